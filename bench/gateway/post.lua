-- wrk script of the gateway benchmark: POSTs the bodies of the files given
-- after "--" in turn, and at
-- the end prints one JSON line with requests/s and latency percentiles.
--   wrk -s post.lua URL -- BODY_FILE...

local bodies = {}
local next_body = 1

function init(args)
    for i = 1, #args do
        local f = assert(io.open(args[i], "rb"))
        bodies[#bodies + 1] = f:read("*a")
        f:close()
    end
    assert(#bodies > 0, "post.lua: no body files")
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
end

function request()
    local b = bodies[next_body]
    next_body = next_body % #bodies + 1
    return wrk.format(nil, nil, nil, b)
end

function done(summary, latency, requests)
    local e = summary.errors
    local secs = summary.duration / 1e6
    io.write(string.format(
        '{"requests":%d,"seconds":%.3f,"rps":%.2f,"bytes":%d,'
        .. '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"mean_ms":%.3f,'
        .. '"max_ms":%.3f,"errors":{"connect":%d,"read":%d,"write":%d,'
        .. '"status":%d,"timeout":%d}}\n',
        summary.requests, secs, summary.requests / secs, summary.bytes,
        latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
        latency:percentile(99) / 1e3, latency.mean / 1e3,
        latency.max / 1e3, e.connect, e.read, e.write, e.status,
        e.timeout))
end
