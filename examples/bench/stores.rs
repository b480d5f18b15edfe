//! The stores the etcd and Consul modes fill and drive: an etcd member started here, terad's own
//! etcd client over it, and the two behind one interface for the watch modes.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use terad::backend::etcd::api::etcdserverpb::{PutRequest, RequestOp, TxnRequest, request_op};
use terad::backend::etcd::client::{Client as EtcdClient, ConnectOptions, Error as EtcdError};

use crate::harness::{ConsulServer, consul_put_many};

/// A real etcd on free loopback ports with a temporary data directory.
pub struct EtcdServer {
    pub child: Child,
    pub _dir: tempfile::TempDir,
    pub url: String,
}

impl EtcdServer {
    pub fn start(runtime: &tokio::runtime::Runtime) -> EtcdServer {
        // BENCH_ETCD_DIR=/dev/shm keeps etcd's WAL fsyncs off the disk terad writes to, as in a
        // deployment where etcd runs on its own machines.
        let dir = match std::env::var_os("BENCH_ETCD_DIR") {
            Some(d) => tempfile::tempdir_in(d).unwrap(),
            None => tempfile::tempdir().unwrap(),
        };
        let port = |_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (client, peer) = (port(0), port(1));
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new("etcd")
            .arg("--name=bench")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={url}"))
            .arg(format!("--advertise-client-urls={url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=bench={peer_url}"))
            .arg("--log-level=error")
            .arg("--logger=zap")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd installed (scripts/install-deps.sh)");
        let server = EtcdServer {
            child,
            _dir: dir,
            url,
        };
        let ready = || {
            runtime.block_on(async {
                match etcd_connect(&server.url).await {
                    Ok(client) => client.status().await.is_ok(),
                    Err(_) => false,
                }
            })
        };
        let started = Instant::now();
        while !ready() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "etcd did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    pub fn client(&self, runtime: &tokio::runtime::Runtime) -> EtcdClient {
        runtime.block_on(etcd_connect(&self.url)).unwrap()
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The key-value store a watch benchmark runs against, with the client that drives it.
pub enum Store {
    Etcd(EtcdServer, Box<EtcdClient>),
    Consul(ConsulServer, reqwest::Client),
}

impl Store {
    pub fn start(kind: &str, runtime: &tokio::runtime::Runtime) -> Store {
        match kind {
            "etcd" => {
                let server = EtcdServer::start(runtime);
                let client = server.client(runtime);
                Store::Etcd(server, Box::new(client))
            }
            _ => {
                let server = ConsulServer::start(runtime);
                Store::Consul(server, reqwest::Client::new())
            }
        }
    }

    pub fn url(&self) -> String {
        match self {
            Store::Etcd(server, _) => server.url.clone(),
            Store::Consul(server, _) => server.url.clone(),
        }
    }

    pub fn load(&mut self, runtime: &tokio::runtime::Runtime, entries: Vec<(String, String)>) {
        match self {
            Store::Etcd(_, client) => runtime.block_on(put_many(client, entries)),
            Store::Consul(server, client) => {
                runtime.block_on(consul_put_many(&server.url, client, entries))
            }
        }
    }

    pub fn put(&mut self, runtime: &tokio::runtime::Runtime, key: &str, value: &str) {
        match self {
            Store::Etcd(_, client) => {
                runtime.block_on(client.put(etcd_put(key, value))).unwrap();
            }
            Store::Consul(server, client) => {
                let url = format!("{}/v1/kv/{}", server.url, key.trim_start_matches('/'));
                let response = runtime
                    .block_on(client.put(url).body(value.to_owned()).send())
                    .unwrap();
                assert!(response.status().is_success());
            }
        }
    }
}

/// Puts many keys in transactions of 128 (etcd's limit per transaction).
pub async fn put_many(client: &mut EtcdClient, entries: Vec<(String, String)>) {
    for chunk in entries.chunks(128) {
        let puts = chunk.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        client.txn(etcd_txn(puts)).await.unwrap();
    }
}

/// A client for the etcd member at `url` (terad's own, over the gRPC stubs it ships).
pub async fn etcd_connect(url: &str) -> Result<EtcdClient, EtcdError> {
    EtcdClient::connect(url, &ConnectOptions::default()).await
}

/// A put of `value` at `key`.
pub fn etcd_put(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        ..PutRequest::default()
    }
}

/// One transaction of puts (etcd takes at most 128 operations in one).
pub fn etcd_txn<'a>(puts: impl IntoIterator<Item = (&'a str, &'a str)>) -> TxnRequest {
    TxnRequest {
        success: puts
            .into_iter()
            .map(|(key, value)| RequestOp {
                request: Some(request_op::Request::RequestPut(etcd_put(key, value))),
            })
            .collect(),
        ..TxnRequest::default()
    }
}
