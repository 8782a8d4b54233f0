# nano_cp_api: nanocp's two admin front ends (HTTP+JSON and msgpack over NNG), built apart from
# the service layer so that they and their tests link without it (they call ops only through
# a cp_call_cb). Included from cli/CMakeLists.txt; nanocp links nano_cp_api with libnano_cp.
include_guard(GLOBAL) # defines a target: include it once, from whichever directory is first
if(NOT TARGET nng::nng)
  find_package(nng CONFIG REQUIRED) # libnng-dev ships nng-config.cmake
endif()
add_library(nano_cp_api STATIC
  ${CMAKE_SOURCE_DIR}/controlplane/api.c
  ${CMAKE_SOURCE_DIR}/controlplane/api_http.c
  ${CMAKE_SOURCE_DIR}/controlplane/api_rpc.c)
target_include_directories(nano_cp_api PUBLIC ${CMAKE_SOURCE_DIR}/controlplane)
target_link_libraries(nano_cp_api PUBLIC nano_shared nano_shared_nng_uv nano_http
                                  PkgConfig::LIBUV nng::nng
                                  PRIVATE nano_warnings)
