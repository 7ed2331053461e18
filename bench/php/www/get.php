<?php
// The counter, read without writing.
session_start(['read_and_close' => true]);
echo $_SESSION['n'] ?? 0, "\n";
