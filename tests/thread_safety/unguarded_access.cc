// The negative control of tools/thread_safety_check.py: it must NOT compile under clang's
// -Wthread-safety -Werror, which proves the check really runs the analysis. Not part of any target.
#include "common/mutex.h"

namespace kubemoe {

class Counter {
 public:
  void Add() { ++value_; }  // reads and writes value_ without holding mu_

 private:
  Mutex mu_;
  int value_ KUBEMOE_GUARDED_BY(mu_) = 0;
};

void Use() { Counter().Add(); }

}  // namespace kubemoe
