// tokio_echo_peer: a raw byte echo server on Tokio (Debian's librust-tokio-dev), the way
// Tokio's own echo example is written: the multi-threaded runtime (what #[tokio::main]
// gives) with --threads worker threads, one spawned task per connection, and a
// read -> write_all loop over a 16 KiB buffer owned by the task. TCP_NODELAY on. Any byte
// echo is a valid PING/ECHO peer (docs/PROTOCOL.md).
//
//   tokio_echo_peer [--addr 127.0.0.1:0] [--threads N]
// Prints "listening on HOST:PORT" on stderr; exits on SIGTERM/SIGINT (default action).
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BUFFER_BYTES: usize = 16 * 1024;

async fn serve(mut s: TcpStream) {
    let _ = s.set_nodelay(true);
    let mut buf = vec![0u8; BUFFER_BYTES];
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if s.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn accept_loop(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((s, _)) => {
                tokio::spawn(serve(s));
            }
            // EMFILE and friends: back off instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn usage() -> ! {
    eprintln!("usage: tokio_echo_peer [--addr host:port] [--threads N]");
    std::process::exit(2);
}

fn main() {
    let mut addr = String::from("127.0.0.1:0");
    let mut threads: usize = 1;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--addr", Some(v)) => addr = v,
            ("--threads", Some(v)) => threads = v.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    if threads < 1 {
        usage();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let listener = match TcpListener::bind(&addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("tokio_echo_peer: listen {}: {}", addr, e);
                std::process::exit(1);
            }
        };
        eprintln!("listening on {}", listener.local_addr().unwrap());
        // The accept loop runs on a worker, like every connection; this thread only waits.
        let _ = tokio::spawn(accept_loop(listener)).await;
    });
}
