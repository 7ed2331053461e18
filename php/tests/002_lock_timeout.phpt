--TEST--
sessionbroker: session_start() gives up after sessionbroker.lock_timeout, naming the session and the holder's pid
--EXTENSIONS--
sessionbroker
--INI--
session.save_handler=sessionbroker
session.use_cookies=0
session.cache_limiter=
session.use_strict_mode=0
--FILE--
<?php
require __DIR__ . '/sbtest.inc';
$id = sb_id('timeout');
session_id($id);
var_dump(session_start());
$_SESSION['mine'] = 'until I close';
/* The child waits 200 ms at most for the lock this process holds. */
$child = sb_child('session_id($argv[1]); var_dump(session_start()); var_dump(session_status() === PHP_SESSION_NONE);',
    [$id], ['sessionbroker.lock_timeout' => '200', 'display_errors' => 'stdout', 'html_errors' => '0']);
$out = stream_get_contents($child[2]);
var_dump(proc_close($child[0]));
$mine = getmypid();
var_dump(str_contains($out, "session $id is locked by process $mine; gave up after 200 ms (sessionbroker.lock_timeout)"));
var_dump(str_contains($out, 'Failed to read session data: sessionbroker'));
var_dump(str_contains($out, "bool(false)\nbool(true)"));
session_write_close();
/* Released: a child now gets it at once, and sees what this process wrote. */
$child = sb_child('session_id($argv[1]); session_start(); echo $_SESSION["mine"], "\n";', [$id],
    ['sessionbroker.lock_timeout' => '5000']);
echo sb_line($child), "\n";
var_dump(sb_finish($child));
?>
--EXPECT--
bool(true)
int(0)
bool(true)
bool(true)
bool(true)
until I close
int(0)
