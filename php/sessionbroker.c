/*
 * sessionbroker.c: a PHP session save handler (ps_module "sessionbroker") over sessionbroker's C API.
 *
 * How PHP's session module maps onto sessionbroker (one PHP session = one sessionbroker session
 * whose attribute "data" holds PHP's serialized $_SESSION):
 *
 *   open      attaches this process to the segment (sessionbroker.segment) on first use; after a
 *             fork (FPM forks its workers after MINIT) the child attaches its own client.
 *   read      opens the session (created if unknown: PHP has already applied use_strict_mode
 *             through validate_sid), takes its exclusive whole-session lock, waiting at most
 *             sessionbroker.lock_timeout, and returns the committed "data". On timeout the
 *             warning names the session and the pid holding it.
 *   write     puts "data" and commits under the lock's token; a lost lock (stale token) is a
 *             failed write with a warning. The session's TTL is set to session.gc_maxlifetime.
 *   update_timestamp  (session.lazy_write, data unchanged) restarts the TTL, fenced the same way.
 *   close     ends the thread lock; the process keeps its lock cached, so this worker's next
 *             request on the session takes it again in nanoseconds, and another process's
 *             request gets it through a revoke request.
 *   destroy   destroys the session under the held lock (or, unlocked, after taking it).
 *   gc        nothing to do: the broker expires a session idle past its TTL (gc_maxlifetime,
 *             set at every write) by itself; returns 0.
 *   create_sid  PHP's id generator, retried on a collision with an existing session.
 *   validate_sid  the session exists (session.use_strict_mode).
 *
 * The lock is held from read until the session module's write and close, which PHP runs in the
 * session module's RSHUTDOWN: after ours (extensions shut down in reverse order), so this
 * extension never releases in its own RSHUTDOWN; its post-deactivate hook only cleans up a lock
 * the session module did not close.
 *
 * Thread safety: the client is per process and the C API is thread-safe; the request's state is in
 * the module globals (per thread under ZTS); attach is serialised by a mutex.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "php.h"
#include "php_ini.h"
#include "ext/standard/info.h"
#include "ext/session/php_session.h"
#include "php_sessionbroker.h"

ZEND_DECLARE_MODULE_GLOBALS(sessionbroker)

/* The attribute that holds PHP's serialized session. */
#define SBPH_ATTR "data"
#define SBPH_ATTR_LEN (sizeof(SBPH_ATTR) - 1)
/* Lock timeout when sessionbroker.lock_timeout < 0 and max_execution_time is 0 (the CLI). */
#define SBPH_DEFAULT_TIMEOUT_MS 30000
/* read: a session destroyed or expired between open and lock is opened (created) again. */
#define SBPH_READ_TRIES 3
#define SBPH_SID_TRIES 3

/* ---- the process's client ---- */

/* One client per process, attached on first use. sbph_pid tells a forked child (FPM workers, or
 * pcntl_fork) that the handle is its parent's: the child frees the copy (which never touches the
 * parent's registration) and attaches its own. */
static pthread_mutex_t sbph_client_mu = PTHREAD_MUTEX_INITIALIZER;
static sb_client *sbph_client = NULL;  /* GUARDED_BY(sbph_client_mu) for attach and detach */
static pid_t sbph_pid = 0;             /* the process that attached sbph_client */
static char *sbph_segment = NULL;      /* the segment it is attached to (malloc) */

static void sbph_client_drop(void)
{
	sb_client_free(sbph_client); /* in a forked child: frees the copy, leaves the parent's slot */
	sbph_client = NULL;
	free(sbph_segment);
	sbph_segment = NULL;
}

/* The client for sessionbroker.segment in this process, attaching if needed; NULL after a warning. */
static sb_client *sbph_get_client(void)
{
	const char *segment = SBG(segment) && *SBG(segment) ? SBG(segment) : "sessionbroker";
	sb_client *c;
	int rc = SB_OK;

	pthread_mutex_lock(&sbph_client_mu);
	if (sbph_client && (sbph_pid != getpid() || strcmp(sbph_segment, segment) != 0)) {
		sbph_client_drop();
	}
	if (!sbph_client) {
		char *name = strdup(segment);
		rc = name ? sb_attach(segment, &sbph_client) : SB_SYSTEM;
		if (rc == SB_OK) {
			sbph_pid = getpid();
			sbph_segment = name;
		} else {
			free(name);
		}
	}
	c = sbph_client;
	pthread_mutex_unlock(&sbph_client_mu);
	if (rc != SB_OK) {
		php_error_docref(NULL, E_WARNING, "sessionbroker: cannot attach to segment \"%s\" (is session-broker running with --segment %s?): %s",
			segment, segment, rc == SB_SYSTEM && !*sb_last_error() ? "out of memory" : sb_last_error());
	}
	return c;
}

/* ---- the request's session ---- */

static zend_long sbph_lock_timeout_ms(void)
{
	zend_long t = SBG(lock_timeout), max_exec;

	if (t >= 0) {
		return t;
	}
	max_exec = zend_ini_long((char *)"max_execution_time", sizeof("max_execution_time") - 1, 0);
	return max_exec > 0 ? max_exec * 1000 : SBPH_DEFAULT_TIMEOUT_MS;
}

/* gc_maxlifetime (s) as a TTL (ms); 0 (the segment's default) when it is not positive. */
static int64_t sbph_ttl_ms(zend_long maxlifetime)
{
	return maxlifetime > 0 && maxlifetime < INT64_MAX / 1000 ? (int64_t)maxlifetime * 1000 : 0;
}

/* Lets go of the request's lock (its writes were committed by write) and session handle. In a
 * forked child the handles are the parent's: the C API refuses them (SB_DETACHED) and frees them. */
static void sbph_release(void)
{
	if (SBG(lock)) {
		sb_discard(SBG(lock));
		SBG(lock) = NULL;
	}
	if (SBG(session)) {
		sb_session_free(SBG(session));
		SBG(session) = NULL;
	}
	if (SBG(id)) {
		zend_string_release(SBG(id));
		SBG(id) = NULL;
	}
}

/* True when this process holds the request's lock on `key`. */
static bool sbph_holds(const zend_string *key)
{
	return SBG(lock) && SBG(lock_pid) == getpid() && zend_string_equals(SBG(id), key);
}

/* Warns that `what` failed for session `key` with the C API's last error. */
static void sbph_warn(const char *what, const zend_string *key, int rc)
{
	php_error_docref(NULL, E_WARNING, "sessionbroker: %s session %s failed: %s", what, ZSTR_VAL(key),
		*sb_last_error() ? sb_last_error() : sb_code_name(rc));
}

static void sbph_warn_too_large(const zend_string *key)
{
	php_error_docref(NULL, E_WARNING,
		"sessionbroker: session id of %zu bytes is over the segment's limit (%s): lower session.sid_length",
		ZSTR_LEN(key), sb_last_error());
}

/* The timeout warning: who holds the session now (a snapshot: it may have let go since). */
static void sbph_warn_timeout(sb_session *s, const zend_string *key, zend_long timeout_ms)
{
	int32_t pids[4];
	size_t n = 0;
	char who[96] = "a process that has let go of it since";

	if (sb_session_holders(s, pids, 4, &n) == SB_OK && n > 0) {
		if (n == 1) {
			snprintf(who, sizeof who, "process %d", (int)pids[0]);
		} else {
			snprintf(who, sizeof who, "%zu processes (pid %d, ...)", n, (int)pids[0]);
		}
	}
	php_error_docref(NULL, E_WARNING,
		"sessionbroker: session %s is locked by %s; gave up after " ZEND_LONG_FMT " ms (sessionbroker.lock_timeout)",
		ZSTR_VAL(key), who, timeout_ms);
}

/* Opens (creating if unknown) and locks `key` exclusively into SBG(session)/SBG(lock). */
static zend_result sbph_open_and_lock(sb_client *c, zend_string *key, zend_long maxlifetime)
{
	const zend_long timeout = sbph_lock_timeout_ms();
	int tries, rc = SB_OK;

	for (tries = 0; tries < SBPH_READ_TRIES; tries++) {
		sb_session *s = NULL;
		sb_lock *l = NULL;

		rc = sb_open_or_create(c, ZSTR_VAL(key), ZSTR_LEN(key), sbph_ttl_ms(maxlifetime), &s, NULL);
		if (rc == SB_TOO_LARGE) {
			sbph_warn_too_large(key);
			return FAILURE;
		}
		if (rc != SB_OK) {
			sbph_warn("opening", key, rc);
			return FAILURE;
		}
		rc = sb_lock_all(s, SB_EXCLUSIVE, timeout, &l);
		if (rc == SB_OK) {
			SBG(session) = s;
			SBG(lock) = l;
			SBG(lock_pid) = getpid();
			SBG(id) = zend_string_copy(key);
			return SUCCESS;
		}
		if (rc == SB_TIMEOUT) {
			sbph_warn_timeout(s, key, timeout);
		} else if (rc != SB_NOT_FOUND) {
			sbph_warn("locking", key, rc);
		}
		sb_session_free(s);
		if (rc != SB_NOT_FOUND) {
			return FAILURE;
		}
		/* destroyed or expired between open and grant: open (create) it again */
	}
	sbph_warn("locking", key, rc);
	return FAILURE;
}

/* sb_get_alloc's allocator: plain malloc, so that PHP's allocator (which may bail out on the memory
 * limit) never runs inside the library's frames. */
static void *sbph_malloc(void *ctx, size_t size)
{
	(void)ctx;
	return malloc(size ? size : 1);
}

/* The committed "data" of the held session into *val (empty when the session is new). */
static zend_result sbph_get_data(const zend_string *key, zend_string **val)
{
	void *buf = NULL;
	size_t len = 0;
	int found = 0;
	int rc = sb_get_alloc(SBG(lock), SBPH_ATTR, SBPH_ATTR_LEN, sbph_malloc, NULL, &buf, &len, &found);

	if (rc != SB_OK) {
		sbph_warn("reading", key, rc);
		return FAILURE;
	}
	*val = found ? zend_string_init((const char *)buf, len, 0) : ZSTR_EMPTY_ALLOC();
	free(buf);
	return SUCCESS;
}

/* ---- the save handler ---- */

PS_FUNCS_UPDATE_TIMESTAMP(sessionbroker);

static const ps_module ps_mod_sessionbroker = {
	PS_MOD_UPDATE_TIMESTAMP(sessionbroker)
};

/* session.save_path is not used: the segment is sessionbroker.segment. */
PS_OPEN_FUNC(sessionbroker)
{
	if (!sbph_get_client()) {
		return FAILURE;
	}
	PS_SET_MOD_DATA(&sessionbroker_module_entry); /* non-NULL: the session module calls close */
	return SUCCESS;
}

PS_CLOSE_FUNC(sessionbroker)
{
	sbph_release();
	PS_SET_MOD_DATA(NULL);
	return SUCCESS;
}

PS_READ_FUNC(sessionbroker)
{
	sb_client *c;

	if (sbph_holds(key)) { /* read again under the same lock (session_reset, or open twice) */
		return sbph_get_data(key, val);
	}
	sbph_release();
	c = sbph_get_client();
	if (!c || sbph_open_and_lock(c, key, maxlifetime) == FAILURE) {
		return FAILURE;
	}
	if (sbph_get_data(key, val) == FAILURE) {
		sbph_release();
		return FAILURE;
	}
	return SUCCESS;
}

PS_WRITE_FUNC(sessionbroker)
{
	int rc;

	if (!sbph_holds(key)) {
		php_error_docref(NULL, E_WARNING, "sessionbroker: writing session %s failed: this request does not hold its lock",
			ZSTR_VAL(key));
		return FAILURE;
	}
	rc = sb_put(SBG(lock), SBPH_ATTR, SBPH_ATTR_LEN, ZSTR_VAL(val), ZSTR_LEN(val));
	if (rc == SB_OK) {
		rc = sb_commit(SBG(lock));
	}
	if (rc == SB_OK) {
		rc = sb_set_ttl(SBG(lock), sbph_ttl_ms(maxlifetime));
	}
	if (rc == SB_STALE_TOKEN) {
		php_error_docref(NULL, E_WARNING,
			"sessionbroker: writing session %s failed: its lock was lost (revoke deadline, break-lock or destroy); nothing was written",
			ZSTR_VAL(key));
		return FAILURE;
	}
	if (rc == SB_TOO_LARGE) {
		php_error_docref(NULL, E_WARNING, "sessionbroker: writing session %s failed: %zu bytes of data are over the segment's --max-value (%s)",
			ZSTR_VAL(key), ZSTR_LEN(val), sb_last_error());
		return FAILURE;
	}
	if (rc != SB_OK) {
		sbph_warn("writing", key, rc);
		return FAILURE;
	}
	return SUCCESS;
}

PS_UPDATE_TIMESTAMP_FUNC(sessionbroker)
{
	int rc;

	if (!sbph_holds(key)) {
		return FAILURE;
	}
	rc = sb_set_ttl(SBG(lock), sbph_ttl_ms(maxlifetime)); /* restarts the idle clock */
	if (rc != SB_OK) {
		sbph_warn("renewing the TTL of", key, rc);
		return FAILURE;
	}
	return SUCCESS;
}

PS_DESTROY_FUNC(sessionbroker)
{
	int rc;

	if (sbph_holds(key)) {
		rc = sb_destroy_locked(SBG(lock)); /* frees the lock whatever the result */
		SBG(lock) = NULL;
		sbph_release();
	} else {
		sb_client *c = sbph_get_client();

		if (!c) {
			return FAILURE;
		}
		rc = sb_destroy(c, ZSTR_VAL(key), ZSTR_LEN(key), sbph_lock_timeout_ms());
	}
	if (rc == SB_OK || rc == SB_NOT_FOUND) { /* as files: destroying what does not exist succeeds */
		return SUCCESS;
	}
	if (rc == SB_TIMEOUT) {
		php_error_docref(NULL, E_WARNING, "sessionbroker: destroying session %s failed: still locked after " ZEND_LONG_FMT " ms",
			ZSTR_VAL(key), sbph_lock_timeout_ms());
	} else {
		sbph_warn("destroying", key, rc);
	}
	return FAILURE;
}

/* The broker expires every session idle past its TTL (set to gc_maxlifetime at each write) on its
 * own, so nothing is left for PHP's gc to delete. */
PS_GC_FUNC(sessionbroker)
{
	*nrdels = 0;
	return 0;
}

PS_CREATE_SID_FUNC(sessionbroker)
{
	sb_client *c = sbph_get_client();
	int tries;

	if (!c) {
		return NULL;
	}
	for (tries = 0; tries < SBPH_SID_TRIES; tries++) {
		sb_session *s = NULL;
		zend_string *sid = php_session_create_id(mod_data);
		int rc;

		if (!sid) {
			return NULL;
		}
		rc = sb_open(c, ZSTR_VAL(sid), ZSTR_LEN(sid), &s);
		if (rc == SB_NOT_FOUND) {
			return sid;
		}
		if (rc == SB_OK) { /* a collision: draw again */
			sb_session_free(s);
		} else if (rc == SB_TOO_LARGE) {
			sbph_warn_too_large(sid);
		} else {
			sbph_warn("checking the new id of", sid, rc);
		}
		zend_string_release(sid);
		if (rc != SB_OK) {
			return NULL;
		}
	}
	php_error_docref(NULL, E_WARNING, "sessionbroker: %d new session ids in a row were taken", SBPH_SID_TRIES);
	return NULL;
}

PS_VALIDATE_SID_FUNC(sessionbroker)
{
	sb_client *c = sbph_get_client();
	sb_session *s = NULL;

	if (!c || sb_open(c, ZSTR_VAL(key), ZSTR_LEN(key), &s) != SB_OK) {
		return FAILURE;
	}
	sb_session_free(s);
	return SUCCESS;
}

/* ---- the extension ---- */

PHP_INI_BEGIN()
	STD_PHP_INI_ENTRY("sessionbroker.segment", "sessionbroker", PHP_INI_ALL, OnUpdateString, segment,
		zend_sessionbroker_globals, sessionbroker_globals)
	STD_PHP_INI_ENTRY("sessionbroker.lock_timeout", "-1", PHP_INI_ALL, OnUpdateLong, lock_timeout,
		zend_sessionbroker_globals, sessionbroker_globals)
PHP_INI_END()

static PHP_GINIT_FUNCTION(sessionbroker)
{
#if defined(COMPILE_DL_SESSIONBROKER) && defined(ZTS)
	ZEND_TSRMLS_CACHE_UPDATE();
#endif
	memset(sessionbroker_globals, 0, sizeof *sessionbroker_globals);
}

static PHP_MINIT_FUNCTION(sessionbroker)
{
	REGISTER_INI_ENTRIES();
	php_session_register_module(&ps_mod_sessionbroker);
	return SUCCESS;
}

static PHP_MSHUTDOWN_FUNCTION(sessionbroker)
{
	pthread_mutex_lock(&sbph_client_mu);
	if (sbph_client) {
		sbph_client_drop(); /* detaches when this process attached it */
	}
	pthread_mutex_unlock(&sbph_client_mu);
	UNREGISTER_INI_ENTRIES();
	return SUCCESS;
}

/* After every RSHUTDOWN, the session module's (which writes and closes) included: a lock still
 * here was never closed by the session module; give it back without writing. */
static ZEND_MODULE_POST_ZEND_DEACTIVATE_D(sessionbroker)
{
	sbph_release();
	return SUCCESS;
}

static PHP_MINFO_FUNCTION(sessionbroker)
{
	php_info_print_table_start();
	php_info_print_table_row(2, "sessionbroker session save handler", "enabled");
	php_info_print_table_row(2, "Version", PHP_SESSIONBROKER_VERSION);
	php_info_print_table_row(2, "Attached to segment", sbph_client && sbph_pid == getpid() ? sbph_segment : "(not attached)");
	php_info_print_table_end();
	DISPLAY_INI_ENTRIES();
}

static const zend_module_dep sessionbroker_deps[] = {
	ZEND_MOD_REQUIRED("session")
	ZEND_MOD_END
};

zend_module_entry sessionbroker_module_entry = {
	STANDARD_MODULE_HEADER_EX,
	NULL,
	sessionbroker_deps,
	"sessionbroker",
	NULL, /* no functions: the session module is the API */
	PHP_MINIT(sessionbroker),
	PHP_MSHUTDOWN(sessionbroker),
	NULL,
	NULL,
	PHP_MINFO(sessionbroker),
	PHP_SESSIONBROKER_VERSION,
	PHP_MODULE_GLOBALS(sessionbroker),
	PHP_GINIT(sessionbroker),
	NULL,
	ZEND_MODULE_POST_ZEND_DEACTIVATE_N(sessionbroker),
	STANDARD_MODULE_PROPERTIES_EX
};

#ifdef COMPILE_DL_SESSIONBROKER
#ifdef ZTS
ZEND_TSRMLS_CACHE_DEFINE()
#endif
ZEND_GET_MODULE(sessionbroker)
#endif
