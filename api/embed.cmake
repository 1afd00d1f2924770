# embed.cmake: turns a file into a C array, at build time, so that the binary
# serves it without reading disk (api/docs.h).
#   cmake -DNAME=osse_doc_x -DIN=file -DOUT=out.c -P embed.cmake
# writes `const unsigned char NAME[]` (the file's bytes and a NUL) and
# `const size_t NAME_len` (the bytes without the NUL). CMake only: no xxd.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# Sixteen bytes a line, so that the generated file stays readable.
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){16})" "\\1\n" bytes "${bytes}")
file(WRITE "${OUT}.tmp"
  "/* Generated from ${IN} by api/embed.cmake: do not edit. */\n"
  "#include <stddef.h>\n\n"
  "extern const unsigned char ${NAME}[];\n"
  "extern const size_t ${NAME}_len;\n"
  "const unsigned char ${NAME}[] = {\n${bytes}0x00};\n"
  "const size_t ${NAME}_len = ${len};\n")
# Replaced only when it changed: nothing rebuilds for an unchanged file.
configure_file("${OUT}.tmp" "${OUT}" COPYONLY)
file(REMOVE "${OUT}.tmp")
