// Which variables start undefined in a frame, mirroring jinja2/idtracking.py.
//
// jinja2 compiles each frame (the template, each loop body) to Python locals. A name the frame
// reads before assigning is resolved from the enclosing frame or the context when the frame
// starts (what a plain scope chain does too); but a name whose first reference in the frame is an
// unconditional {% set %}, with no enclosing frame referencing it, becomes a local that starts
// undefined. A loop body running before that {% set %} then sees the name undefined, even when
// the context has it: `{% for m in messages %}{{ x }}{% endfor %}{% set x = 1 %}` prints nothing
// for x whatever the caller passed. The renderer binds these names to Undefined on frame entry.
#include <map>
#include <set>

#include "router/jinja_ast.h"

namespace kubemoe::router::jinja {
namespace {

enum class Init { kResolve, kAlias, kUndefined, kParameter };

using Body = std::vector<std::unique_ptr<Stmt>>;

struct Frame {
  const std::set<std::string>* enclosing;  // names referenced by enclosing frames
  std::map<std::string, Init> refs;
  std::set<std::string> stores;
};

void Load(const std::string& name, Frame* f) {
  if (!f->refs.count(name) && !f->enclosing->count(name)) f->refs[name] = Init::kResolve;
}

void Store(const std::string& name, Frame* f) {
  f->stores.insert(name);
  if (!f->refs.count(name)) {
    f->refs[name] = f->enclosing->count(name) ? Init::kAlias : Init::kUndefined;
  }
}

void Loads(const Expr& e, Frame* f) {
  if (e.kind == ExprKind::kName || e.kind == ExprKind::kCall) Load(e.name, f);
  for (const auto& child : e.children) {
    if (child) Loads(*child, f);
  }
}

void VisitBody(const Body& body, Frame* f);

// jinja2's Symbols.branch_update: a name assigned in some branch is resolved from outside the
// frame when the frame starts (so an untaken branch leaves the outer value visible).
void BranchUpdate(Frame* f, const std::vector<Frame>& branches) {
  std::set<std::string> stored;
  for (const Frame& b : branches) {
    for (const auto& name : b.stores) {
      if (!f->stores.count(name)) stored.insert(name);
    }
  }
  for (const Frame& b : branches) {
    for (const auto& [name, init] : b.refs) f->refs[name] = init;
    f->stores.insert(b.stores.begin(), b.stores.end());
  }
  for (const auto& name : stored) {
    f->refs[name] = f->enclosing->count(name) ? Init::kAlias : Init::kResolve;
  }
}

// One `if` (or `elif`) test and body, with no further branches of its own.
void VisitSimpleIf(const Expr& test, const Body& body, Frame* f) {
  Loads(test, f);
  Frame taken = *f;
  VisitBody(body, &taken);
  BranchUpdate(f, {taken, *f, *f});
}

void VisitIf(const Stmt& s, Frame* f) {
  Loads(*s.conditions[0], f);
  Frame body = *f;
  VisitBody(s.bodies[0], &body);
  Frame elifs = *f;  // jinja2 visits every elif, in order, in one copy
  for (size_t i = 1; i < s.conditions.size(); ++i)
    VisitSimpleIf(*s.conditions[i], s.bodies[i], &elifs);
  Frame otherwise = *f;
  if (s.bodies.size() > s.conditions.size()) VisitBody(s.bodies.back(), &otherwise);
  BranchUpdate(f, {body, elifs, otherwise});
}

void VisitBody(const Body& body, Frame* f) {
  for (const auto& s : body) {
    switch (s->kind) {
      case StmtKind::kText:
        break;
      case StmtKind::kOutput:
        Loads(*s->expr, f);
        break;
      case StmtKind::kSet:
        Loads(*s->expr, f);
        Store(s->target, f);
        break;
      case StmtKind::kFor:
        Loads(*s->expr, f);
        break;  // the body is a frame of its own
      case StmtKind::kIf:
        VisitIf(*s, f);
        break;
    }
  }
}

void AnalyzeFrame(Body* body, const std::set<std::string>& enclosing, const Stmt* loop,
                  std::vector<std::string>* undefined_at_entry);

// Analyzes the loop bodies that are children of a frame (directly or inside its if-branches).
void AnalyzeChildren(Body* body, const std::set<std::string>& enclosing) {
  for (auto& s : *body) {
    if (s->kind == StmtKind::kFor) {
      AnalyzeFrame(&s->bodies[0], enclosing, s.get(), &s->undefined_at_entry);
    } else if (s->kind == StmtKind::kIf) {
      for (auto& branch : s->bodies) AnalyzeChildren(&branch, enclosing);
    }
  }
}

void AnalyzeFrame(Body* body, const std::set<std::string>& enclosing, const Stmt* loop,
                  std::vector<std::string>* undefined_at_entry) {
  Frame f{&enclosing, {}, {}};
  if (loop) {
    f.refs[loop->target] = Init::kParameter;
    f.refs["loop"] = Init::kParameter;
  }
  VisitBody(*body, &f);
  std::set<std::string> inner = enclosing;
  for (const auto& [name, init] : f.refs) {
    inner.insert(name);
    if (init == Init::kUndefined) undefined_at_entry->push_back(name);
  }
  AnalyzeChildren(body, inner);
}

}  // namespace

void AnalyzeScopes(Program* program) {
  AnalyzeFrame(&program->body, {}, nullptr, &program->undefined_at_entry);
}

}  // namespace kubemoe::router::jinja
