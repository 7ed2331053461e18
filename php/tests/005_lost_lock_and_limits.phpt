--TEST--
sessionbroker: a write after the lock was taken away fails with a warning; an id over the segment's limit is refused clearly
--EXTENSIONS--
sessionbroker
--INI--
session.save_handler=sessionbroker
session.use_cookies=0
session.cache_limiter=
session.use_strict_mode=0
html_errors=0
--FILE--
<?php
require __DIR__ . '/sbtest.inc';
$id = sb_id('lost');
session_id($id);
session_start();
$_SESSION['n'] = 1;
session_write_close();
session_start();
$_SESSION['n'] = 2;
/* An administrator breaks the lock (sessionctl break-lock): this process's token is stale. */
$ctl = getenv('SESSIONBROKER_SESSIONCTL');
exec(escapeshellarg($ctl) . ' break-lock --yes --segment ' . escapeshellarg(ini_get('sessionbroker.segment')) . ' ' . escapeshellarg($id), $o, $rc);
var_dump($rc);
var_dump(session_write_close());       // PHP 8.2 says true here whatever the handler said: the warning tells
session_start();
var_dump($_SESSION['n']);               // the stale write wrote nothing
session_write_close();

session_id(str_repeat('a', 200));
var_dump(session_start());
?>
--EXPECTF--
int(0)

Warning: session_write_close(): sessionbroker: writing session %s failed: its lock was lost (revoke deadline, break-lock or destroy); nothing was written in %s on line %d

Warning: session_write_close(): Failed to write session data (sessionbroker). Please verify that the current setting of session.save_path is correct () in %s on line %d
bool(true)
int(1)

Warning: session_start(): sessionbroker: session id of 200 bytes is over the segment's limit (%s): lower session.sid_length in %s on line %d

Warning: session_start(): Failed to read session data: sessionbroker (path: ) in %s on line %d
bool(false)
