# `cmake --install BUILD [--prefix P]`: what a system or a consumer project needs.
#
#   include/sessionbroker/{client,error,export}.hpp   the public API (no shm_layout headers: the
#                                                     API does not expose the segment)
#   include/sessionbroker/sessionbroker.h             the C API (C99), in the same libraries
#   lib/libsessionbroker.so.0.1, .so, .a              libsession/installable.cmake
#   bin/session-broker, bin/sessionctl
#   libexec/sessionbroker-etcd-agent                  when built with etcd: the process the
#                                                     libraries start for an etcd:// store
#   lib/cmake/sessionbroker/                          find_package(sessionbroker): targets
#                                                     sessionbroker::session (shared) and
#                                                     sessionbroker::session_static
#   lib/pkgconfig/sessionbroker.pc                    pkg-config (--static for the archive)
#   lib/systemd/system/session-broker.service         cmake/systemd.cmake
#   lib/sysusers.d/sessionbroker.conf                 the service's system user
#   share/doc/sessionbroker/                          protocol.md, LAYOUT.md
#
# Everything is relocatable: the package config, the .pc file and the unit file are written for
# the prefix given at install time, not the one configured. Included last from the top-level
# CMakeLists.txt, after every target it installs exists.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
include(${CMAKE_CURRENT_LIST_DIR}/systemd.cmake)

set(SESSIONBROKER_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/sessionbroker)
set(SESSIONBROKER_PKGCONFIG_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# ---- headers and libraries ----
install(FILES
  libsession/include/sessionbroker/client.hpp
  libsession/include/sessionbroker/error.hpp
  libsession/include/sessionbroker/export.hpp
  libsession/include/sessionbroker/sessionbroker.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/sessionbroker)
# Two export sets: the static one names fmt::fmt, which the package config finds only for it.
install(TARGETS sessionbroker_shared EXPORT sessionbroker-targets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS sessionbroker_static EXPORT sessionbroker-static-targets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# ---- programs ----
install(TARGETS session-broker RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# Started by the libraries for an etcd:// store (libsession/installable.cmake names this path).
if(TARGET sessionbroker-etcd-agent)
  install(TARGETS sessionbroker-etcd-agent RUNTIME DESTINATION ${CMAKE_INSTALL_LIBEXECDIR})
endif()
if(TARGET sessionctl)
  install(TARGETS sessionctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

# ---- CMake package ----
install(EXPORT sessionbroker-targets NAMESPACE sessionbroker:: DESTINATION ${SESSIONBROKER_CMAKE_DIR})
install(EXPORT sessionbroker-static-targets NAMESPACE sessionbroker:: DESTINATION ${SESSIONBROKER_CMAKE_DIR})
configure_package_config_file(cmake/sessionbroker-config.cmake.in
  ${PROJECT_BINARY_DIR}/sessionbroker-config.cmake
  INSTALL_DESTINATION ${SESSIONBROKER_CMAKE_DIR})
# 0.x: a newer minor version may break the API, so only the same major.minor is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/sessionbroker-config-version.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/sessionbroker-config.cmake
  ${PROJECT_BINARY_DIR}/sessionbroker-config-version.cmake
  DESTINATION ${SESSIONBROKER_CMAKE_DIR})

# ---- pkg-config: paths relative to the .pc file (${pcfiledir}), so any prefix works ----
file(RELATIVE_PATH SESSIONBROKER_PC_TO_PREFIX /prefix/${SESSIONBROKER_PKGCONFIG_DIR} /prefix)
string(REGEX REPLACE "/$" "" SESSIONBROKER_PC_TO_PREFIX "${SESSIONBROKER_PC_TO_PREFIX}")
configure_file(cmake/sessionbroker.pc.in ${PROJECT_BINARY_DIR}/sessionbroker.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/sessionbroker.pc DESTINATION ${SESSIONBROKER_PKGCONFIG_DIR})

# ---- documentation ----
install(FILES docs/protocol.md shm_layout/LAYOUT.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
