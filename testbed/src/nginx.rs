//! nginx (Debian's) as the online and the test service, one instance per host with its own files.

use std::{fmt::Write as _, path::Path};

/// The port of the `upstream` helper behind `/slow/` and `/chunked/` (on 127.0.0.1).
pub const UPSTREAM_PORT: u16 = 8082;

/// The nginx configuration of `host`, everything under `dir` (logs, pid, temp files).
pub fn config(dir: &Path, host: &str) -> String {
    let d = dir.display();
    // For `--compare` (tests/tests/compare.rs): the test host answers `/changed/` with 500 and
    // `/body/` with another body; `/build/` carries a header naming the host. `/slow/` and
    // `/chunked/` are answered by an upstream on each host (`Testbed::start_upstream`): `/slow/`
    // after the delay that host's upstream was given, `/chunked/` with a body of unknown length
    // that nginx sends chunked.
    let test = host == "test";
    let changed = if test { 500 } else { 200 };
    let body = if test { "other body" } else { "same" };
    let mut c = String::new();
    // `user root`: the testbed runs as root and its files live in a private temp dir.
    let _ = write!(
        c,
        r#"user root;
worker_processes 1;
daemon on;
pid {d}/{host}-nginx.pid;
error_log {d}/{host}-error.log warn;
events {{ worker_connections 8192; }}
http {{
    default_type text/plain;
    log_format tcx '$remote_addr $remote_port "$request" $status $request_length $body_bytes_sent $request_body_file';
    access_log {d}/{host}-access.log tcx;
    client_body_temp_path {d}/{host}-tmp/body;
    proxy_temp_path {d}/{host}-tmp/proxy;
    fastcgi_temp_path {d}/{host}-tmp/fastcgi;
    uwsgi_temp_path {d}/{host}-tmp/uwsgi;
    scgi_temp_path {d}/{host}-tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 65;
    client_max_body_size 64m;
    server {{
        listen 80 default_server backlog=4096;
        listen [::]:80 default_server backlog=4096;
        location / {{
            return 200 "{host} $request_uri\n";
        }}
        # --compare: the same answer on both hosts, or not (see above).
        location /same/ {{
            return 200 "same $request_uri\n";
        }}
        location /changed/ {{
            return {changed} "same $request_uri\n";
        }}
        location /body/ {{
            return 200 "{body} $request_uri\n";
        }}
        location /build/ {{
            add_header X-Build {host};
            return 200 "same $request_uri\n";
        }}
        location /slow/ {{
            proxy_pass http://127.0.0.1:{UPSTREAM_PORT};
        }}
        location /chunked/ {{
            proxy_pass http://127.0.0.1:{UPSTREAM_PORT};
            proxy_buffering off;
        }}
        # Bulk uploads (benchmarks): the body is read into memory and dropped.
        location /bulk {{
            client_body_buffer_size 2m;
            proxy_pass http://127.0.0.1:8081;
        }}
        # Files the tests put under the testbed folder's static/ (large answers).
        location /static/ {{
            root {d};
        }}
        # Request bodies are kept in files (named in the access log) so tests can compare them.
        location /upload {{
            client_body_in_file_only on;
            proxy_pass http://127.0.0.1:8081;
        }}
    }}
    # HTTP/2 cleartext (prior knowledge, as h2load speaks it): multiplexed connections.
    server {{
        listen 8080 http2;
        listen [::]:8080 http2;
        location / {{
            return 200 "{host} $request_uri\n";
        }}
    }}
    server {{
        listen 127.0.0.1:8081;
        access_log off;
        location / {{
            return 200 "stored\n";
        }}
    }}
}}
"#
    );
    c
}
