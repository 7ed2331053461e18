--TEST--
sessionbroker: the lock is held from session_start to the write; a second process waits, then sees the write
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
/* The child announces its pid, then starts the same session. While this process holds the lock
 * the child must be queued (seen with sessionctl, not guessed with a sleep); only then does this
 * process change the session and close it. A handler that did not lock would let the child read
 * n=1 before the write. */
$id = sb_id('held');
session_id($id);
var_dump(session_start());
$_SESSION['n'] = 1;
session_write_close();                 // committed: n=1
var_dump(session_start());             // locked again, for this whole "request"
$child = sb_child('echo getmypid(), "\n"; session_id($argv[1]); $ok = session_start();
    echo "child started: ", var_export($ok, true), ", n=", $_SESSION["n"] ?? "none", "\n";
    $_SESSION["n"]++; fgets(STDIN);', [$id]);
$pid = (int)sb_line($child);
var_dump(sb_wait_queued($id, $pid));   // the child waits for our lock
$state = sb_session_state($id);
var_dump($state['holders'] === [getmypid()]);
$_SESSION['n'] = 2;
session_write_close();                 // the write, then the lock passes to the child
echo sb_line($child), "\n";
var_dump(sb_finish($child));
session_start();                       // the child's write is committed
var_dump($_SESSION['n']);
?>
--EXPECT--
bool(true)
bool(true)
bool(true)
bool(true)
child started: true, n=2
int(0)
int(3)
