//! `fake-apiserver`: serves the in-repo Kubernetes API test server until Ctrl-C or SIGTERM, for
//! tests written in other languages and for poking at it by hand. Prints
//! `listening on http://ADDRESS` on stdout once it accepts connections.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use fake_apiserver::{Config, FakeApiServer};

/// The in-repo Kubernetes API test server.
#[derive(Debug, Parser)]
#[command(name = "fake-apiserver", version)]
struct Cli {
    /// Address to listen on (port 0 picks a free port).
    #[arg(
        long,
        env = "KEYWAY_FAKE_APISERVER_LISTEN",
        default_value = "127.0.0.1:0"
    )]
    listen: SocketAddr,
    /// Milliseconds between BOOKMARK events on idle watches that allow them.
    #[arg(
        long,
        env = "KEYWAY_FAKE_APISERVER_BOOKMARK_MS",
        default_value_t = 5000
    )]
    bookmark_interval_ms: u64,
    /// Watch events retained; resuming from older resource versions is 410 Gone.
    #[arg(long, env = "KEYWAY_FAKE_APISERVER_HISTORY", default_value_t = 100_000)]
    history_limit: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = Config {
        bookmark_interval: Duration::from_millis(cli.bookmark_interval_ms.max(1)),
        history_limit: cli.history_limit,
        ..Config::default()
    };
    let server = match FakeApiServer::serve(config, cli.listen).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("fake-apiserver: cannot listen on {}: {e}", cli.listen);
            return ExitCode::from(kit::exit::UNAVAILABLE);
        }
    };
    #[allow(clippy::print_stdout, reason = "the address is the binary's output")]
    {
        println!("listening on {}", server.url());
    }
    kit::shutdown::signal().await;
    drop(server);
    ExitCode::SUCCESS
}
