# cmake -DIN=file.bin -DOUT=file.c -DNAME=symbol -P embed.cmake: the bytes
# of IN as `const unsigned char NAME[]` and `const unsigned NAME_size` (the
# fw-cfg plugin's own option ROM, assembled at build time).
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR size "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE "${OUT}" "/* Generated from ${IN} by embed.cmake: do not edit. */\n"
     "extern const unsigned char ${NAME}[];\n"
     "extern const unsigned ${NAME}_size;\n"
     "const unsigned char ${NAME}[] = {\n\t${bytes}\n};\n"
     "const unsigned ${NAME}_size = ${size};\n")
