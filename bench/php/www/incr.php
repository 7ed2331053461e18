<?php
// One request of the bench: read the session's counter, add one, write it back (at request end).
session_start();
$_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
echo $_SESSION['n'], "\n";
