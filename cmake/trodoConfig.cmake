# find_package(trodo CONFIG REQUIRED) for an installed libtrodo (cargo cinstall):
# the imported target trodo::trodo. Installed as
# <prefix>/share/cmake/trodo/trodoConfig.cmake.
#
# Where pkg-config is at hand (Linux, macOS), the target is made from the
# installed trodo.pc, so the flags (and Libs.private for static linking) live
# in one place. Without it (most Windows machines, or -DTRODO_NO_PKG_CONFIG=ON)
# the target is made from the prefix's own files: include/trodo.h, the shared
# library (on Windows bin/trodo.dll with its import library in lib/).
get_filename_component(_trodo_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)

if(NOT WIN32 AND NOT TRODO_NO_PKG_CONFIG)
    find_package(PkgConfig QUIET)
endif()

if(PKG_CONFIG_FOUND)
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
    return()
endif()

find_path(_trodo_include trodo.h PATHS "${_trodo_prefix}/include" NO_DEFAULT_PATH)
if(WIN32)
    # The import library: trodo.dll.lib (MSVC) or trodo.dll.a (MinGW).
    find_file(_trodo_implib NAMES trodo.dll.lib trodo.dll.a libtrodo.dll.a
              PATHS "${_trodo_prefix}/lib" NO_DEFAULT_PATH)
    find_file(_trodo_dll NAMES trodo.dll PATHS "${_trodo_prefix}/bin" "${_trodo_prefix}/lib"
              NO_DEFAULT_PATH)
    set(_trodo_found_all _trodo_include _trodo_implib _trodo_dll)
else()
    find_library(_trodo_lib NAMES trodo PATHS "${_trodo_prefix}/lib" "${_trodo_prefix}/lib64"
                 NO_DEFAULT_PATH)
    set(_trodo_found_all _trodo_include _trodo_lib)
endif()
foreach(_trodo_var IN LISTS _trodo_found_all)
    if(NOT ${_trodo_var})
        set(trodo_FOUND FALSE)
        set(trodo_NOT_FOUND_MESSAGE "libtrodo's files were not found under ${_trodo_prefix}")
        return()
    endif()
endforeach()

if(NOT TARGET trodo::trodo)
    add_library(trodo::trodo SHARED IMPORTED)
    set_target_properties(trodo::trodo PROPERTIES
        INTERFACE_INCLUDE_DIRECTORIES "${_trodo_include}")
    if(WIN32)
        set_target_properties(trodo::trodo PROPERTIES
            IMPORTED_IMPLIB "${_trodo_implib}"
            IMPORTED_LOCATION "${_trodo_dll}")
    else()
        set_target_properties(trodo::trodo PROPERTIES IMPORTED_LOCATION "${_trodo_lib}")
    endif()
endif()
