dnl config.m4 for the sessionbroker session save handler (phpize; see README.md).
dnl   ./configure --with-sessionbroker=PREFIX   sessionbroker installed in PREFIX (cmake --install)
dnl   ./configure --with-sessionbroker          pkg-config's own search path
dnl Links the C API (libsessionbroker, sessionbroker.h) found through pkg-config, with an rpath to
dnl its libdir so the module loads without LD_LIBRARY_PATH.

PHP_ARG_WITH([sessionbroker],
  [for the sessionbroker session save handler],
  [AS_HELP_STRING([[--with-sessionbroker[=PREFIX]]],
    [Include the sessionbroker session save handler. PREFIX: where sessionbroker is installed])])

if test "$PHP_SESSIONBROKER" != "no"; then
  if test "$PHP_SESSIONBROKER" != "yes"; then
    dnl The prefix's .pc file, wherever its libdir is (lib, lib64, lib/<multiarch>).
    SB_PC=`find "$PHP_SESSIONBROKER" -name sessionbroker.pc -path '*/pkgconfig/*' 2>/dev/null | head -n 1`
    if test -z "$SB_PC"; then
      AC_MSG_ERROR([no sessionbroker.pc under $PHP_SESSIONBROKER: install sessionbroker there first (cmake --install BUILD --prefix $PHP_SESSIONBROKER)])
    fi
    PKG_CONFIG_PATH="`dirname "$SB_PC"`${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    export PKG_CONFIG_PATH
  fi
  PKG_CHECK_MODULES([SESSIONBROKER], [sessionbroker >= 0.1])
  SB_LIBDIR=`$PKG_CONFIG --variable=libdir sessionbroker`
  SB_LIBDIR=`cd "$SB_LIBDIR" && pwd`  dnl the .pc file's relative libdir, made canonical for the rpath

  PHP_EVAL_INCLINE([$SESSIONBROKER_CFLAGS])
  PHP_ADD_LIBRARY_WITH_PATH([sessionbroker], [$SB_LIBDIR], [SESSIONBROKER_SHARED_LIBADD])

  dnl sb_session_holders came with the PHP handler: refuse an older install with a clear message.
  PHP_CHECK_LIBRARY([sessionbroker], [sb_session_holders], [],
    [AC_MSG_ERROR([libsessionbroker in $SB_LIBDIR has no sb_session_holders: install a newer sessionbroker])],
    [-L$SB_LIBDIR])

  PHP_SUBST([SESSIONBROKER_SHARED_LIBADD])
  PHP_NEW_EXTENSION([sessionbroker], [sessionbroker.c], [$ext_shared],, [-Wall -Wextra -Wno-unused-parameter])
  PHP_ADD_EXTENSION_DEP([sessionbroker], [session])
fi
