// Sub-commands of the `kubemoe` CLI. Each Register* adds its sub-command to the app; the
// callback runs it and sets `*exit_code`.
#pragma once

#include <CLI/CLI.hpp>

namespace kubemoe::cli {

void RegisterMakeModel(CLI::App& app, int* exit_code);
void RegisterInspect(CLI::App& app, int* exit_code);
void RegisterGenerate(CLI::App& app, int* exit_code);
void RegisterUp(CLI::App& app, int* exit_code);
void RegisterEval(CLI::App& app, int* exit_code);

}  // namespace kubemoe::cli
