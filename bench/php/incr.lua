-- wrk: each thread drives one connection (wrk -t C -c C) and sends SB_REQUESTS requests with the
-- session cookie SB_COOKIE, then stops: a thread stops only after its connection's last response,
-- so no request is left in flight and every increment the server made was counted here. A thread
-- that is done leaves the file SB_DONE_DIR/<thread>; run.sh interrupts wrk (SIGINT: it reports)
-- once all are there, since wrk's main thread otherwise waits out its whole -d.
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

local quota = tonumber(os.getenv("SB_REQUESTS"))
local done = 0
function init(args)
  wrk.headers["Cookie"] = os.getenv("SB_COOKIE")
  wrk.path = "/incr.php"
end
function response(status, headers, body)
  done = done + 1
  if done == quota then
    local f = io.open(os.getenv("SB_DONE_DIR") .. "/" .. id, "w")
    f:close()
    wrk.thread:stop()
  end
end
