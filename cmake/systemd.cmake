# session-broker as a systemd service.
#
# SESSIONBROKER_WITH_SYSTEMD (default: ON when pkg-config finds libsystemd, Debian's libsystemd-dev):
# session-broker calls sd_notify("READY=1") once its segment is usable and "STOPPING=1" on
# shutdown, and the unit installed is Type=notify. Without it the unit is Type=simple (see the
# comment in packaging/systemd/session-broker.service.in for what that loses).
#
# The unit file is written at install time, so ExecStart names the prefix `cmake --install
# --prefix` was given. SESSIONBROKER_SYSTEMD_UNIT_DIR is relative to that prefix; systemd reads
# both /usr/lib/systemd/system and /usr/local/lib/systemd/system.
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(SESSIONBROKER_LIBSYSTEMD QUIET IMPORTED_TARGET GLOBAL libsystemd)
endif()
if(SESSIONBROKER_LIBSYSTEMD_FOUND)
  set(_sb_systemd_default ON)
else()
  set(_sb_systemd_default OFF)
endif()
option(SESSIONBROKER_WITH_SYSTEMD "session-broker reports readiness to systemd (sd_notify; needs libsystemd-dev)"
  ${_sb_systemd_default})
set(SESSIONBROKER_SYSTEMD_UNIT_DIR "lib/systemd/system" CACHE STRING
  "Where the unit file goes, relative to the install prefix")
set(SESSIONBROKER_SYSUSERS_DIR "lib/sysusers.d" CACHE STRING
  "Where the sysusers.d file creating the service's user goes, relative to the install prefix")

if(SESSIONBROKER_WITH_SYSTEMD)
  if(NOT SESSIONBROKER_LIBSYSTEMD_FOUND)
    message(FATAL_ERROR "SESSIONBROKER_WITH_SYSTEMD is ON but pkg-config finds no libsystemd: "
                        "apt-get install libsystemd-dev pkgconf, or configure with -DSESSIONBROKER_WITH_SYSTEMD=OFF")
  endif()
  target_link_libraries(session-broker PRIVATE PkgConfig::SESSIONBROKER_LIBSYSTEMD)
  target_compile_definitions(session-broker PRIVATE SESSIONBROKER_WITH_SYSTEMD)
  set(_sb_unit_type notify)
else()
  set(_sb_unit_type simple)
endif()

set(_sb_unit_in ${PROJECT_SOURCE_DIR}/packaging/systemd/session-broker.service.in)
set(_sb_unit_out ${PROJECT_BINARY_DIR}/packaging/session-broker.service)
install(CODE "
  if(IS_ABSOLUTE \"${CMAKE_INSTALL_BINDIR}\")
    set(SESSIONBROKER_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
  else()
    set(SESSIONBROKER_BINDIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}\")
  endif()
  set(SESSIONBROKER_UNIT_TYPE ${_sb_unit_type})
  configure_file(\"${_sb_unit_in}\" \"${_sb_unit_out}\" @ONLY)
")
install(FILES ${_sb_unit_out} DESTINATION ${SESSIONBROKER_SYSTEMD_UNIT_DIR})
install(FILES ${PROJECT_SOURCE_DIR}/packaging/systemd/sessionbroker.sysusers
  DESTINATION ${SESSIONBROKER_SYSUSERS_DIR} RENAME sessionbroker.conf)
