/* A C99 program linked against an installed sessionbroker through its C API (sessionbroker.h):
 * adds 1 to a counter in a shared session, N times, under an exclusive lock on the attribute, as
 * examples/consumer/ does in C++. scripts/check-install.sh builds it with pkg-config:
 *   gcc -std=c99 -Wall -Wextra -Wpedantic main.c $(pkg-config --cflags --libs sessionbroker)
 * usage: c_consumer SEGMENT SESSION N */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sessionbroker/sessionbroker.h>

static int fail(const char* what, int rc) {
  fprintf(stderr, "c_consumer: %s: %s (%s)\n", what, sb_code_name(rc), sb_last_error());
  return 1;
}

int main(int argc, char** argv) {
  sb_client* client;
  sb_session* session;
  const char* names[] = {"counter"};
  const size_t lens[] = {7};
  int rc, i, n;
  if (argc != 4) return fprintf(stderr, "usage: c_consumer SEGMENT SESSION N\n"), 2;
  if ((rc = sb_attach(argv[1], &client)) != SB_OK) return fail("attach", rc);
  /* The first process creates the session, the others open it: no race between them. */
  if ((rc = sb_open_or_create(client, argv[2], strlen(argv[2]), 0, &session, NULL)) != SB_OK) return fail("open", rc);
  for (i = 0, n = atoi(argv[3]); i < n; ++i) {
    sb_lock* lock;
    char value[32];
    size_t len = 0;
    int found = 0;
    if ((rc = sb_lock_attrs(session, names, lens, 1, SB_EXCLUSIVE, 5000, &lock)) != SB_OK) return fail("lock", rc);
    if ((rc = sb_get(lock, "counter", 7, value, sizeof value - 1, &len, &found)) != SB_OK || len >= sizeof value)
      return sb_discard(lock), fail("get", rc);
    value[found ? len : 0] = '\0';                        /* committed value, under the lock */
    len = (size_t)snprintf(value, sizeof value, "%ld", strtol(value, NULL, 10) + 1);
    if ((rc = sb_put(lock, "counter", 7, value, len)) != SB_OK) return sb_discard(lock), fail("put", rc);
    if ((rc = sb_unlock(lock)) != SB_OK) return fail("unlock", rc); /* commits: other processes see it now */
  }
  printf("c_consumer %s: %s increments committed\n", argv[2], argv[3]);
  sb_session_free(session);
  rc = sb_detach(client);
  sb_client_free(client);
  return rc == SB_OK ? 0 : fail("detach", rc);
}
