/*
 * php_sessionbroker.h: the sessionbroker session save handler for PHP (session.save_handler =
 * sessionbroker). sessionbroker.c says how it maps PHP's session module onto sessionbroker's locks.
 */
#ifndef PHP_SESSIONBROKER_H
#define PHP_SESSIONBROKER_H

#include <sys/types.h>

#include "php.h"
#include "sessionbroker/sessionbroker.h"

extern zend_module_entry sessionbroker_module_entry;
#define phpext_sessionbroker_ptr &sessionbroker_module_entry

#define PHP_SESSIONBROKER_VERSION "0.1.0"

ZEND_BEGIN_MODULE_GLOBALS(sessionbroker)
	/* INI */
	char *segment;          /* sessionbroker.segment: the broker's segment name */
	zend_long lock_timeout; /* sessionbroker.lock_timeout, ms; < 0: max_execution_time (30 s when 0) */
	/* The request's session: set by read, given back by close (or post-deactivate, as a backstop). */
	sb_session *session;    /* the session read, NULL when none */
	sb_lock *lock;          /* its exclusive whole-session lock, NULL when none */
	zend_string *id;        /* its id */
	pid_t lock_pid;         /* the process that took lock: in a forked child the handles are the parent's */
ZEND_END_MODULE_GLOBALS(sessionbroker)

#define SBG(v) ZEND_MODULE_GLOBALS_ACCESSOR(sessionbroker, v)

#if defined(ZTS) && defined(COMPILE_DL_SESSIONBROKER)
ZEND_TSRMLS_CACHE_EXTERN()
#endif

#endif /* PHP_SESSIONBROKER_H */
