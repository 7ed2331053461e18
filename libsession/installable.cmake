# The two libraries `cmake --install` ships; cmake/install.cmake installs and exports them.
#
#   sessionbroker_shared  libsessionbroker.so  exported as sessionbroker::session
#   sessionbroker_static  libsessionbroker.a   exported as sessionbroker::session_static
#
# Both hold what the in-tree sessionbroker_core + sessionbroker_session hold, with the
# shared-memory backend and, when built with etcd, the application's side of the etcd backend
# (it starts the installed libexec/sessionbroker-etcd-agent, which alone links gRPC); their
# interface is include/sessionbroker/ and the C++ standard library: fmt and Boost stay private.
# - The shared library compiles those sources again with hidden visibility and without
#   SESSIONBROKER_STATIC, so only the SESSIONBROKER_EXPORT classes and functions of the public
#   headers leave it (scripts/check-install.sh checks the dynamic symbol table).
# - The static library archives the objects the in-tree libraries already built (compiled with
#   SESSIONBROKER_STATIC, position-independent); its users link fmt and Threads themselves.
# REQUIRES: included after sessionbroker_core and sessionbroker_session have all their sources.
get_target_property(_sb_core_sources sessionbroker_core SOURCES)
get_target_property(_sb_session_sources sessionbroker_session SOURCES)
include(GNUInstallDirs)
set(_sb_backend_sources ${SESSIONBROKER_SHM_BACKEND_SOURCES})
set(_sb_backend_definitions)
if(SESSIONBROKER_WITH_ETCD)
  list(APPEND _sb_backend_sources ${SESSIONBROKER_AGENT_CLIENT_SOURCES})
  # The agent where cmake/install.cmake puts it: found from the shared library's own directory
  # (relocatable), else the configured path (the static library's users); SESSIONBROKER_ETCD_AGENT
  # in the environment overrides both.
  file(RELATIVE_PATH _sb_agent_from_libdir "${CMAKE_INSTALL_FULL_LIBDIR}"
       "${CMAKE_INSTALL_FULL_LIBEXECDIR}/sessionbroker-etcd-agent")
  set(_sb_backend_definitions SESSIONBROKER_WITH_ETCD
      SESSIONBROKER_ETCD_AGENT_FROM_LIBDIR="${_sb_agent_from_libdir}"
      SESSIONBROKER_ETCD_AGENT_PATH="${CMAKE_INSTALL_FULL_LIBEXECDIR}/sessionbroker-etcd-agent")
endif()

add_library(sessionbroker_shared SHARED ${_sb_core_sources} ${_sb_session_sources} ${_sb_backend_sources})
target_compile_definitions(sessionbroker_shared PRIVATE ${_sb_backend_definitions})
set_target_properties(sessionbroker_shared PROPERTIES
  OUTPUT_NAME sessionbroker
  EXPORT_NAME session
  VERSION ${PROJECT_VERSION}
  # 0.x: every minor version may change the ABI.
  SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR}
  CXX_VISIBILITY_PRESET hidden
  VISIBILITY_INLINES_HIDDEN ON)
target_include_directories(sessionbroker_shared
  PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
  PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
target_compile_features(sessionbroker_shared PUBLIC cxx_std_17)
target_compile_options(sessionbroker_shared PRIVATE ${SESSIONBROKER_CODEGEN_OPTIONS})
target_link_libraries(sessionbroker_shared PRIVATE
  sessionbroker_shm_layout Threads::Threads Boost::headers fmt::fmt sessionbroker_warnings)

# The archive takes the objects as they are, so they must be position-independent (core already is).
set_property(TARGET sessionbroker_session PROPERTY POSITION_INDEPENDENT_CODE ON)
# The backends as the shared library has them: an object library of its own.
add_library(sessionbroker_backends_shm OBJECT ${_sb_backend_sources})
target_compile_definitions(sessionbroker_backends_shm PRIVATE ${_sb_backend_definitions})
target_include_directories(sessionbroker_backends_shm PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
target_link_libraries(sessionbroker_backends_shm PRIVATE sessionbroker_core fmt::fmt sessionbroker_warnings)
target_compile_options(sessionbroker_backends_shm PRIVATE ${SESSIONBROKER_CODEGEN_OPTIONS})
set_target_properties(sessionbroker_backends_shm PROPERTIES POSITION_INDEPENDENT_CODE ON)
add_library(sessionbroker_static STATIC $<TARGET_OBJECTS:sessionbroker_core> $<TARGET_OBJECTS:sessionbroker_session>
            $<TARGET_OBJECTS:sessionbroker_backends_shm>)
set_target_properties(sessionbroker_static PROPERTIES OUTPUT_NAME sessionbroker EXPORT_NAME session_static)
target_include_directories(sessionbroker_static INTERFACE $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>)
target_compile_definitions(sessionbroker_static INTERFACE SESSIONBROKER_STATIC)
target_compile_features(sessionbroker_static INTERFACE cxx_std_17)
target_link_libraries(sessionbroker_static INTERFACE Threads::Threads fmt::fmt)
