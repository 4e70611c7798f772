// kubemoe: command-line entry point. Sub-commands live in one file each.
#include <cstdio>

#include "tools/kubemoe/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"kubemoe: distributed serving of DeepSeek-V2-style Mixture-of-Experts models"};
  app.require_subcommand(1);
  int exit_code = 0;
  kubemoe::cli::RegisterMakeModel(app, &exit_code);
  kubemoe::cli::RegisterInspect(app, &exit_code);
  kubemoe::cli::RegisterGenerate(app, &exit_code);
  kubemoe::cli::RegisterUp(app, &exit_code);
  kubemoe::cli::RegisterEval(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}
