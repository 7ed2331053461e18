--TEST--
sessionbroker: session_regenerate_id() moves the data to a new id that is locked, and deletes or releases the old one
--EXTENSIONS--
sessionbroker
--INI--
session.save_handler=sessionbroker
session.use_cookies=0
session.cache_limiter=
session.use_strict_mode=1
--FILE--
<?php
require __DIR__ . '/sbtest.inc';
ob_start();  /* session_regenerate_id() needs the headers unsent */
/* A child that tries the session for 200 ms and says what it found. */
function probe(string $id): string {
    $c = sb_child('session_id($argv[1]); if (@session_start()) { echo session_id() === $argv[1] ? "same" : "new",
        " id, x=", $_SESSION["x"] ?? "none", "\n"; } else { echo "locked\n"; }', [$id],
        ['sessionbroker.lock_timeout' => '200']);
    $line = sb_line($c);
    sb_finish($c);
    return $line;
}
session_start();                        // strict mode: a new id from create_sid
$a = session_id();
$_SESSION['x'] = 'kept';
session_write_close();
session_id($a);
session_start();
var_dump(session_regenerate_id(true));  // delete the old session
$b = session_id();
var_dump($a !== $b, $_SESSION['x']);
echo "b: ", probe($b), "\n";            // locked by this process
echo "a: ", probe($a), "\n";            // destroyed: strict mode gives the child a new id
var_dump(session_regenerate_id(false)); // keep b: written and released
$c = session_id();
echo "b: ", probe($b), "\n";
echo "c: ", probe($c), "\n";
session_write_close();
echo "c: ", probe($c), "\n";
?>
--EXPECT--
bool(true)
bool(true)
string(4) "kept"
b: locked
a: new id, x=none
bool(true)
b: same id, x=kept
c: locked
c: same id, x=kept
