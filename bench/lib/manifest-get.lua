-- wrk script for registry-bench: GET a manifest with the usual client Accept list.
-- (wrk cannot benchmark HEAD: its parser then waits for Content-Length body bytes
-- that never come, wg/wrk#198; HEAD is measured by lib/headload.py instead.)
wrk.method = "GET"
wrk.headers["Accept"] = "application/vnd.oci.image.index.v1+json, " ..
  "application/vnd.oci.image.manifest.v1+json, " ..
  "application/vnd.docker.distribution.manifest.list.v2+json, " ..
  "application/vnd.docker.distribution.manifest.v2+json"

function done(summary, latency, requests)
  io.write(string.format("BENCH requests=%d non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.errors.status, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout))
end
