--TEST--
sessionbroker: a worker killed (SIGKILL) while holding a session passes the lock on; its committed write stays, its uncommitted one is gone
--EXTENSIONS--
sessionbroker
--INI--
session.save_handler=sessionbroker
session.use_cookies=0
session.cache_limiter=
session.use_strict_mode=0
sessionbroker.lock_timeout=30000
--FILE--
<?php
require __DIR__ . '/sbtest.inc';
$id = sb_id('killed');
/* The child commits n=1, locks again, sets n=2 without writing, says so and blocks on STDIN. */
$child = sb_child('session_id($argv[1]); session_start(); $_SESSION["n"] = 1; session_write_close();
    session_start(); $_SESSION["n"] = 2; echo getmypid(), "\n"; fgets(STDIN);', [$id]);
$pid = (int)sb_line($child);
var_dump(sb_session_state($id)['holders'] === [$pid]);
exec("kill -9 $pid", $o, $rc);          // kill -9 in the middle of the request (the php, not its shell)
var_dump($rc);
fclose($child[1]);
fclose($child[2]);
proc_close($child[0]);
session_id($id);
var_dump(session_start());              // granted once the broker reclaims the dead holder
var_dump($_SESSION['n']);
var_dump(sb_session_state($id)['holders'] === [getmypid()]);
?>
--EXPECT--
bool(true)
int(0)
bool(true)
int(1)
bool(true)
