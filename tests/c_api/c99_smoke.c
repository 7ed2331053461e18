/*
 * c99_smoke.c: sessionbroker.h used from C99 (built with gcc -std=c99 -Wall -Wextra -Wpedantic
 * -Werror, so the header's C-cleanliness is checked on every build), run by ctest against a
 * session-broker it starts itself on a private segment.
 *
 *   c99_smoke BROKER_BINARY SEGMENT      (the segment is named SEGMENT-<pid>)
 *
 * It starts the broker (--ready-fd on a pipe, --remove-on-exit), attaches, creates a session, writes
 * and reads a value under an exclusive lock, checks a try-lock from a second client is SB_BUSY, sets
 * a TTL, destroys the session under its lock, and stops the broker with SIGTERM. Exit 0 on success.
 */
#define _POSIX_C_SOURCE 200809L

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sessionbroker/sessionbroker.h>

static pid_t broker = -1;

static int fail(const char* what, int rc) {
  fprintf(stderr, "c99_smoke: %s: %s (%s)\n", what, sb_code_name(rc), sb_last_error());
  if (broker > 0) {
    kill(broker, SIGTERM);
    waitpid(broker, NULL, 0);
  }
  return 1;
}

/* Starts the broker and waits for its "ready" line. */
static int start_broker(const char* bin, const char* segment) {
  int fds[2];
  char fd_arg[16], line[16];
  ssize_t n;
  if (pipe(fds) != 0) return -1;
  broker = fork();
  if (broker < 0) return -1;
  if (broker == 0) {
    close(fds[0]);
    snprintf(fd_arg, sizeof fd_arg, "%d", fds[1]);
    execl(bin, bin, "--segment", segment, "--remove-on-exit", "--max-clients", "8", "--max-sessions", "16",
          "--attr-memory", "1M", "--max-value", "64K", "--ready-fd", fd_arg, (char*)NULL);
    _exit(127);
  }
  close(fds[1]);
  n = read(fds[0], line, sizeof line - 1);
  close(fds[0]);
  return n > 0 && strncmp(line, "ready", 5) == 0 ? 0 : -1;
}

static int run(const char* segment) {
  sb_client *c, *other;
  sb_session *s, *s2;
  sb_lock *l, *busy;
  const char* names[] = {"counter"};
  size_t lens[] = {7}, len = 0;
  char buf[32];
  int rc, found = 0, created = 0;
  int64_t left = 0;

  if ((rc = sb_attach(segment, &c)) != SB_OK) return fail("sb_attach", rc);
  if ((rc = sb_open_or_create(c, "smoke", 5, 0, &s, &created)) != SB_OK || !created) return fail("sb_open_or_create", rc);
  if ((rc = sb_lock_attrs(s, names, lens, 1, SB_EXCLUSIVE, 1000, &l)) != SB_OK) return fail("sb_lock_attrs", rc);
  if ((rc = sb_put(l, "counter", 7, "41", 2)) != SB_OK) return fail("sb_put", rc);
  if ((rc = sb_unlock(l)) != SB_OK) return fail("sb_unlock", rc);

  if ((rc = sb_attach(segment, &other)) != SB_OK) return fail("sb_attach (second)", rc);
  if ((rc = sb_open(other, "smoke", 5, &s2)) != SB_OK) return fail("sb_open", rc);
  if ((rc = sb_lock_all(s2, SB_SHARED, 0, &busy)) != SB_BUSY) return fail("try-lock on a held session", rc);
  sb_session_free(s2);

  if ((rc = sb_lock_all(s, SB_EXCLUSIVE, 1000, &l)) != SB_OK) return fail("sb_lock_all", rc);
  if ((rc = sb_get(l, "counter", 7, buf, sizeof buf, &len, &found)) != SB_OK) return fail("sb_get", rc);
  if (!found || len != 2 || memcmp(buf, "41", 2) != 0) return fail("sb_get read back something else", SB_OK);
  if ((rc = sb_set_ttl(l, 60000)) != SB_OK) return fail("sb_set_ttl", rc);
  if ((rc = sb_ttl_remaining(l, &left)) != SB_OK || left <= 0 || left > 60000) return fail("sb_ttl_remaining", rc);
  if ((rc = sb_destroy_locked(l)) != SB_OK) return fail("sb_destroy_locked", rc);
  if ((rc = sb_open(c, "smoke", 5, &s2)) != SB_NOT_FOUND) return fail("sb_open after destroy", rc);

  sb_session_free(s);
  sb_client_free(other);
  sb_client_free(c);
  return 0;
}

int main(int argc, char** argv) {
  int rc, status = 0;
  char segment[200];
  if (argc != 3) {
    fprintf(stderr, "usage: c99_smoke BROKER_BINARY SEGMENT\n");
    return 2;
  }
  snprintf(segment, sizeof segment, "%s-%ld", argv[2], (long)getpid()); /* unique: test runs may overlap */
  if (start_broker(argv[1], segment) != 0) return fail("starting session-broker", SB_SYSTEM);
  rc = run(segment);
  if (rc != 0) return rc; /* fail() stopped the broker */
  kill(broker, SIGTERM);
  if (waitpid(broker, &status, 0) != broker || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "c99_smoke: session-broker did not stop cleanly\n");
    return 1;
  }
  printf("c99_smoke: ok\n");
  return 0;
}
