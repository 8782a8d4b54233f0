# Helpers shared by every area's CMakeLists.txt.

# nano_warnings: the warning set every target links (docs/style.md#cmake); -Werror under CI=true.
add_library(nano_warnings INTERFACE)
target_compile_options(nano_warnings INTERFACE
  -Wall -Wextra -Wshadow -Wformat=2
  $<$<COMPILE_LANGUAGE:C>:-Wstrict-prototypes>)
if("$ENV{CI}" STREQUAL "true")
  target_compile_options(nano_warnings INTERFACE -Werror)
endif()

# nano_embed(OUT_C SYMBOL FILE...): generates a C file holding each FILE as
# `{name, bytes, len}` in the array SYMBOL (plus SYMBOL_count), in the order given.
# Used for built-in JS and SQL migrations; the output lives in the build tree.
function(nano_embed out_c symbol)
  set(files ${ARGN})
  add_custom_command(
    OUTPUT ${out_c}
    COMMAND ${CMAKE_COMMAND} -DOUT=${out_c} -DSYMBOL=${symbol} "-DFILES=${files}"
            -P ${CMAKE_SOURCE_DIR}/cmake/embed.cmake
    DEPENDS ${files} ${CMAKE_SOURCE_DIR}/cmake/embed.cmake
    COMMENT "Embedding ${symbol} (${CMAKE_CURRENT_SOURCE_DIR})"
    VERBATIM)
endfunction()

# nano_unit_runner(NAME SOURCES... LIBS ... GROUPS ...): a cmocka runner with one ctest
# entry per group (`NAME.group`), each run as `NAME group`.
function(nano_unit_runner name)
  cmake_parse_arguments(U "" "" "SOURCES;LIBS;GROUPS" ${ARGN})
  add_executable(${name} ${U_SOURCES})
  target_link_libraries(${name} PRIVATE ${U_LIBS} PkgConfig::CMOCKA nano_warnings)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  foreach(group ${U_GROUPS})
    add_test(NAME ${name}.${group} COMMAND ${name} ${group})
    set_tests_properties(${name}.${group} PROPERTIES TIMEOUT 60 LABELS unit)
  endforeach()
endfunction()
