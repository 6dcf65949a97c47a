# find_package(trodo CONFIG REQUIRED) for an installed libtrodo (cargo cinstall):
# the imported target trodo::trodo, made from the installed trodo.pc, so the
# flags (and Libs.private for static linking) live in one place.
# Installed as <prefix>/share/cmake/trodo/trodoConfig.cmake.
include(CMakeFindDependencyMacro)
find_dependency(PkgConfig)

get_filename_component(_trodo_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
# This installation's trodo.pc first, whatever PKG_CONFIG_PATH says.
set(_trodo_saved_pkg_config_path "$ENV{PKG_CONFIG_PATH}")
set(ENV{PKG_CONFIG_PATH}
    "${_trodo_prefix}/lib/pkgconfig:${_trodo_prefix}/lib64/pkgconfig:${_trodo_prefix}/share/pkgconfig:$ENV{PKG_CONFIG_PATH}")
pkg_check_modules(TRODO QUIET IMPORTED_TARGET GLOBAL trodo)
set(ENV{PKG_CONFIG_PATH} "${_trodo_saved_pkg_config_path}")

if(NOT TRODO_FOUND)
    set(trodo_FOUND FALSE)
    set(trodo_NOT_FOUND_MESSAGE "trodo.pc was not found under ${_trodo_prefix}")
    return()
endif()

if(NOT TARGET trodo::trodo)
    add_library(trodo::trodo INTERFACE IMPORTED)
    target_link_libraries(trodo::trodo INTERFACE PkgConfig::TRODO)
endif()
set(trodo_VERSION "${TRODO_VERSION}")
