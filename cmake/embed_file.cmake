# Writes OUTPUT, a C++ file defining `extern const std::string_view SYMBOL` with INPUT's bytes.
file(READ ${INPUT} hex HEX)
string(LENGTH "${hex}" hex_length)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," bytes "${hex}")
file(WRITE ${OUTPUT}
  "// Generated from ${INPUT}; do not edit.\n#include <string_view>\n"
  "namespace kubemoe {\nstatic const char kBytes[] = {${bytes} 0};\n"
  "extern const std::string_view ${SYMBOL}(kBytes, sizeof(kBytes) - 1);\n}  // namespace kubemoe\n")
