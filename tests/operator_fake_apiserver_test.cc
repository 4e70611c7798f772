// The fake API server's start-up where its Python tool is missing (issue 8, item 11): a build made
// by hand before `bash scripts/setup.sh` must skip the tests that need the venv, saying how to get
// it, instead of failing with "fake apiserver exited early" and an empty log.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "operator_fake_apiserver.h"
#include "tests/temp_dir.h"

namespace kubemoe {
namespace {

using ::testing::HasSubstr;
using testing::FakeApiServer;

// An executable shell script standing in for Python.
std::string FakePython(const TempDir& dir, const std::string& body) {
  std::string path = dir.File("python");
  std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
  ::chmod(path.c_str(), 0755);
  return path;
}

TEST(FakeApiServerTest, BuildFindsTheSourceVenvByDefault) {
  // CMake's KUBEMOE_PYTHON, when not given, is <source>/.venv/bin/python (scripts/setup.sh's).
  EXPECT_FALSE(std::string(KUBEMOE_PYTHON).empty());
}

TEST(FakeApiServerTest, MissingPythonSkipsSayingHowToGetIt) {
  FakeApiServer server(1.0, "/nonexistent/.venv/bin/python");
  EXPECT_FALSE(server.ok());
  EXPECT_TRUE(server.skipped());
  EXPECT_THAT(server.error(), HasSubstr("/nonexistent/.venv/bin/python"));
  EXPECT_THAT(server.error(), HasSubstr("bash scripts/setup.sh"));
}

TEST(FakeApiServerTest, VenvWithoutAPackageSkipsSayingHowToUpdateIt) {
  TempDir dir;
  FakeApiServer server(
      1.0, FakePython(dir, "echo \"ModuleNotFoundError: No module named 'yaml'\" >&2; exit 1"));
  EXPECT_FALSE(server.ok());
  EXPECT_TRUE(server.skipped());
  EXPECT_THAT(server.error(), HasSubstr("bash scripts/setup.sh"));
  EXPECT_THAT(server.error(), HasSubstr("No module named 'yaml'"));
}

TEST(FakeApiServerTest, ServerThatDiesFailsWithItsLog) {
  TempDir dir;
  FakeApiServer server(1.0, FakePython(dir, "echo 'port in use' >&2; exit 3"));
  EXPECT_FALSE(server.ok());
  EXPECT_FALSE(server.skipped());
  EXPECT_THAT(server.error(), HasSubstr("exited early"));
  EXPECT_THAT(server.error(), HasSubstr("port in use"));
}

TEST(FakeApiServerTest, PythonThatCannotRunSaysWhyInTheLog) {
  TempDir dir;
  std::string python = dir.File("python");
  std::ofstream(python) << "#!/nonexistent/interpreter\n";
  ::chmod(python.c_str(), 0755);
  FakeApiServer server(1.0, python);
  EXPECT_FALSE(server.ok());
  EXPECT_THAT(server.error(), HasSubstr("cannot run " + python));
}

}  // namespace
}  // namespace kubemoe
