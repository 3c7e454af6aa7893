// A minimal HTTP server: answers every request with a greeting and its uptime,
// formatted by the `ms` package (to prove dependencies were installed).
const http = require("http");
const ms = require("ms");

const port = Number(process.env.PORT || 3000);
const started = Date.now();

const server = http.createServer((req, res) => {
  if (req.url === "/health") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ status: "ok" }));
    return;
  }
  const uptime = ms(Date.now() - started, { long: true });
  res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
  res.end(`hello from node (up ${uptime}; one day is ${ms("1d")} ms)\n`);
});

const deployment = process.env.SLIPWAY_DEPLOYMENT_ID || "local";
server.listen(port, () => {
  console.log(`node-hello listening on port ${port} (deployment ${deployment})`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
