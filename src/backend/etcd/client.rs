//! A client for one etcd member, over the gRPC stubs generated into [`super::api`].
//!
//! terad used the etcd-client crate, which compiles etcd's `.proto` files in its build script:
//! building terad needed `protoc` (a plain `cargo install` failed without it). The stubs are now
//! generated once by `scripts/gen-etcd-api.sh` and committed, and this module is the little of
//! etcd-client that terad used, with the same behaviour on the wire:
//!
//! - one member per client: the failover between members is [`super::members`]' job;
//! - TLS through tonic's rustls with the ring provider (the CA and client certificate given);
//! - `hasleader: true` on every request when [`ConnectOptions::require_leader`] is set, so a
//!   member cut off from its cluster refuses instead of answering from stale state;
//! - username and password: authenticated when connecting; the token goes with every request as
//!   the `token` metadata and, when etcd says it is invalid (it expired, or the member
//!   restarted), is renewed once and the request sent again.
//!
//! Also used by the integration tests and the benchmarks to write to etcd.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::channel::Change;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, GrpcMethod, Status};

use super::api::etcdserverpb::auth_client::AuthClient;
use super::api::etcdserverpb::kv_client::KvClient;
use super::api::etcdserverpb::lease_client::LeaseClient;
use super::api::etcdserverpb::maintenance_client::MaintenanceClient;
use super::api::etcdserverpb::watch_client::WatchClient;
use super::api::etcdserverpb::{
    AuthenticateRequest, DeleteRangeRequest, DeleteRangeResponse, LeaseGrantRequest,
    LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, StatusRequest,
    StatusResponse, TxnRequest, TxnResponse, WatchCreateRequest, WatchProgressRequest,
    WatchRequest, WatchResponse, watch_request,
};

/// Why an etcd call failed. [`super::EtcdSource`] tells from the variant whether the member is
/// unreachable (try another), refused the request (the store's answer) or was misconfigured.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The member answered with a gRPC status, or the channel made one of a failure to reach
    /// it (`Unavailable`, `Unknown` "Service was not ready", …).
    #[error("grpc request error: {0}")]
    Status(#[from] Status),
    /// The endpoint could not be set up (a TLS configuration tonic refuses).
    #[error("transport error: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("invalid uri: {0}")]
    InvalidUri(#[from] tonic::codegen::http::uri::InvalidUri),
    #[error("invalid arguments: {0}")]
    InvalidArgs(String),
    /// etcd's token is not a valid gRPC metadata value.
    #[error("invalid auth token: {0}")]
    InvalidToken(#[from] tonic::metadata::errors::InvalidMetadataValue),
    /// A watch or keep-alive stream closed under a request (the connection broke).
    #[error("watch error: {0}")]
    Watch(String),
    /// A keep-alive could not be sent, or etcd no longer knows the lease.
    #[error("lease keep alive error: {0}")]
    LeaseKeepAlive(String),
}

/// How to reach a member.
#[derive(Clone, Default)]
pub struct ConnectOptions {
    /// Username and password, for etcd with authentication enabled.
    pub user: Option<(String, String)>,
    /// TLS settings for `https://` endpoints; an endpoint without a scheme uses TLS when given.
    pub tls: Option<ClientTlsConfig>,
    /// How long establishing the connection may take.
    pub connect_timeout: Option<Duration>,
    /// HTTP/2 keep-alive (ping interval, timeout for the answer), also while no call is open.
    pub keep_alive: Option<(Duration, Duration)>,
    /// Send `hasleader: true`: a member without a leader then fails requests (and ends
    /// watches) with `Unavailable` instead of serving stale data or staying silent.
    pub require_leader: bool,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password is never printed.
        f.debug_struct("ConnectOptions")
            .field("user", &self.user.as_ref().map(|(name, _)| name))
            .field("tls", &self.tls.is_some())
            .field("connect_timeout", &self.connect_timeout)
            .field("keep_alive", &self.keep_alive)
            .field("require_leader", &self.require_leader)
            .finish()
    }
}

/// The token etcd issued for the credentials, shared by every clone of a client and the
/// interceptor that sends it.
type Token = Arc<RwLock<Option<AsciiMetadataValue>>>;

/// The channel every stub of a client uses: one connection to the member, with the metadata
/// etcd expects on each request.
type Grpc = InterceptedService<Channel, Metadata>;

/// A client for one etcd member. Cloning is cheap and shares the connection and the token.
#[derive(Clone)]
pub struct Client {
    stubs: Stubs,
    auth: Option<Arc<Auth>>,
    /// Keeps the balanced channel's endpoint list open: the channel's worker ends when it closes.
    _endpoints: mpsc::Sender<Change<String, Endpoint>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

/// What every generated stub is made from.
#[derive(Clone)]
struct Stubs {
    channel: Grpc,
    max_decoding: Option<usize>,
    max_encoding: Option<usize>,
}

/// The credentials and the token they were exchanged for.
struct Auth {
    user: String,
    password: String,
    token: Token,
    /// Held while renewing, so requests that find the token expired together renew it once.
    renewing: tokio::sync::Mutex<()>,
}

impl Client {
    /// Connects to the member at `url` (`http://` or `https://`, or `host:port`). The connection
    /// itself is made on first use; with credentials, that is here, to authenticate.
    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Client, Error> {
        let endpoint = endpoint(url, options)?;
        // A balanced channel over the one endpoint, as etcd-client built it: its behaviour
        // while a member dies and comes back (requests wait while it reconnects; a refused
        // connection fails them) is what the failover in `super::members` was tuned against.
        let (channel, endpoints) = Channel::balance_channel(64);
        endpoints
            .send(Change::Insert(url.to_owned(), endpoint))
            .await
            .map_err(|_| Error::InvalidArgs(format!("cannot add endpoint {url:?}")))?;
        let token = Token::default();
        let channel = InterceptedService::new(
            channel,
            Metadata {
                require_leader: options.require_leader,
                token: Arc::clone(&token),
            },
        );
        let client = Client {
            stubs: Stubs {
                channel,
                max_decoding: None,
                max_encoding: None,
            },
            auth: options.user.as_ref().map(|(user, password)| {
                Arc::new(Auth {
                    user: user.clone(),
                    password: password.clone(),
                    token,
                    renewing: tokio::sync::Mutex::new(()),
                })
            }),
            _endpoints: endpoints,
        };
        if let Some(auth) = &client.auth {
            auth.authenticate(&client.stubs).await?;
        }
        Ok(client)
    }

    /// The largest response accepted (tonic's default is 4 MiB).
    #[must_use]
    pub fn max_decoding_message_size(mut self, limit: usize) -> Client {
        self.stubs.max_decoding = Some(limit);
        self
    }

    /// The largest request sent (unlimited by default; etcd has its own limit).
    #[must_use]
    pub fn max_encoding_message_size(mut self, limit: usize) -> Client {
        self.stubs.max_encoding = Some(limit);
        self
    }

    /// Sends a request with `call`, renewing the token and sending it once more when etcd
    /// says the token is invalid. The request is cloned only when it may be sent twice.
    async fn call<Req, T, F, Fut>(&self, request: Req, call: F) -> Result<T, Error>
    where
        Req: Clone,
        F: Fn(Stubs, Req) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let Some(auth) = &self.auth else {
            return call(self.stubs.clone(), request).await;
        };
        // The token this request goes with: if etcd refuses it and another call renewed it
        // meanwhile, there is nothing to renew.
        let sent_with = auth.token();
        match call(self.stubs.clone(), request.clone()).await {
            Err(Error::Status(status)) if is_invalid_token(&status) => {
                auth.renew_unless(sent_with, &self.stubs).await?;
                call(self.stubs.clone(), request).await
            }
            result => result,
        }
    }

    pub async fn range(&self, request: RangeRequest) -> Result<RangeResponse, Error> {
        self.call(request, |stubs, request| async move {
            Ok(stubs.kv().range(request).await?.into_inner())
        })
        .await
    }

    pub async fn put(&self, request: PutRequest) -> Result<PutResponse, Error> {
        self.call(request, |stubs, request| async move {
            Ok(stubs.kv().put(request).await?.into_inner())
        })
        .await
    }

    pub async fn delete_range(
        &self,
        request: DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, Error> {
        self.call(request, |stubs, request| async move {
            Ok(stubs.kv().delete_range(request).await?.into_inner())
        })
        .await
    }

    pub async fn txn(&self, request: TxnRequest) -> Result<TxnResponse, Error> {
        self.call(request, |stubs, request| async move {
            Ok(stubs.kv().txn(request).await?.into_inner())
        })
        .await
    }

    /// The member's status, answered locally (no quorum needed): its leader, its revision.
    pub async fn status(&self) -> Result<StatusResponse, Error> {
        self.call(StatusRequest {}, |stubs, request| async move {
            let mut maintenance = MaintenanceClient::new(stubs.channel);
            Ok(maintenance.status(request).await?.into_inner())
        })
        .await
    }

    /// Grants a lease of `ttl` seconds, its id chosen by etcd.
    pub async fn lease_grant(&self, ttl: i64) -> Result<LeaseGrantResponse, Error> {
        let request = LeaseGrantRequest { ttl, id: 0 };
        self.call(request, |stubs, request| async move {
            Ok(stubs.lease().lease_grant(request).await?.into_inner())
        })
        .await
    }

    pub async fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse, Error> {
        self.call(LeaseRevokeRequest { id }, |stubs, request| async move {
            Ok(stubs.lease().lease_revoke(request).await?.into_inner())
        })
        .await
    }

    /// Opens a keep-alive stream for lease `id` and keeps it alive once. Fails with
    /// [`Error::LeaseKeepAlive`] when etcd no longer knows the lease.
    pub async fn lease_keep_alive(
        &self,
        id: i64,
    ) -> Result<(LeaseKeeper, LeaseKeepAliveStream), Error> {
        let first = LeaseKeepAliveRequest { id };
        let (sender, mut responses) = self
            .call(first, |stubs, first| async move {
                let (sender, requests) = mpsc::channel(100);
                sender
                    .send(first)
                    .await
                    .map_err(|e| Error::LeaseKeepAlive(e.to_string()))?;
                let responses = stubs
                    .lease()
                    .lease_keep_alive(ReceiverStream::new(requests))
                    .await?
                    .into_inner();
                Ok((sender, responses))
            })
            .await?;
        match responses.message().await? {
            Some(answer) if answer.ttl <= 0 => {
                Err(Error::LeaseKeepAlive("lease not found".to_owned()))
            }
            Some(answer) => Ok((
                LeaseKeeper {
                    id: answer.id,
                    sender,
                },
                LeaseKeepAliveStream { responses },
            )),
            None => Err(Error::Watch(
                "the keep-alive stream ended before its first answer".to_owned(),
            )),
        }
    }

    /// Opens a watch stream with a first watch; more can be added with [`WatchStream::watch`].
    pub async fn watch(&self, first: WatchCreateRequest) -> Result<WatchStream, Error> {
        self.call(first, |stubs, first| async move {
            let (requests, receiver) = mpsc::channel(100);
            let first = WatchRequest {
                request_union: Some(watch_request::RequestUnion::CreateRequest(first)),
            };
            requests
                .send(first)
                .await
                .map_err(|e| Error::Watch(e.to_string()))?;
            let responses = stubs
                .watch()
                .watch(ReceiverStream::new(receiver))
                .await?
                .into_inner();
            Ok(WatchStream {
                requests,
                responses,
            })
        })
        .await
    }
}

impl Stubs {
    fn limited<S>(
        &self,
        stub: S,
        decoding: impl FnOnce(S, usize) -> S,
        encoding: impl FnOnce(S, usize) -> S,
    ) -> S {
        let stub = match self.max_decoding {
            Some(limit) => decoding(stub, limit),
            None => stub,
        };
        match self.max_encoding {
            Some(limit) => encoding(stub, limit),
            None => stub,
        }
    }

    fn kv(&self) -> KvClient<Grpc> {
        self.limited(
            KvClient::new(self.channel.clone()),
            KvClient::max_decoding_message_size,
            KvClient::max_encoding_message_size,
        )
    }

    fn watch(&self) -> WatchClient<Grpc> {
        self.limited(
            WatchClient::new(self.channel.clone()),
            WatchClient::max_decoding_message_size,
            WatchClient::max_encoding_message_size,
        )
    }

    fn lease(&self) -> LeaseClient<Grpc> {
        LeaseClient::new(self.channel.clone())
    }
}

impl Auth {
    fn token(&self) -> Option<AsciiMetadataValue> {
        self.token.read().expect("etcd token lock").clone()
    }

    /// Exchanges the credentials for a token, which every request carries from then on.
    async fn authenticate(&self, stubs: &Stubs) -> Result<(), Error> {
        let request = AuthenticateRequest {
            name: self.user.clone(),
            password: self.password.clone(),
        };
        let answer = AuthClient::new(stubs.channel.clone())
            .authenticate(request)
            .await?
            .into_inner();
        let token: AsciiMetadataValue = answer.token.parse()?;
        *self.token.write().expect("etcd token lock") = Some(token);
        Ok(())
    }

    /// Authenticates again, unless the token is no longer `stale` (a concurrent call renewed
    /// it while this one waited).
    async fn renew_unless(
        &self,
        stale: Option<AsciiMetadataValue>,
        stubs: &Stubs,
    ) -> Result<(), Error> {
        let _renewing = self.renewing.lock().await;
        if self.token() != stale {
            return Ok(());
        }
        tracing::debug!(user = %self.user, "etcd auth token invalid; authenticating again");
        self.authenticate(stubs).await
    }
}

/// Whether etcd refused the token as invalid or expired: `Unauthenticated`, or `Unknown` with
/// etcd's message (services etcd implements over its in-process client lose the code).
fn is_invalid_token(status: &Status) -> bool {
    match status.code() {
        Code::Unauthenticated => true,
        Code::Unknown => status.message() == "etcdserver: invalid auth token",
        _ => false,
    }
}

/// The endpoint for `url`, with TLS and the connection settings.
fn endpoint(url: &str, options: &ConnectOptions) -> Result<Endpoint, Error> {
    let mut endpoint = if url.starts_with("http://") {
        if options.tls.is_some() {
            return Err(Error::InvalidArgs(format!(
                "TLS is configured but {url:?} is not an https:// URL"
            )));
        }
        Channel::builder(url.parse()?)
    } else if url.starts_with("https://") {
        Channel::builder(url.parse()?).tls_config(options.tls.clone().unwrap_or_default())?
    } else {
        match &options.tls {
            Some(tls) => {
                Channel::builder(format!("https://{url}").parse()?).tls_config(tls.clone())?
            }
            None => Channel::builder(format!("http://{url}").parse()?),
        }
    };
    if let Some((interval, timeout)) = options.keep_alive {
        endpoint = endpoint
            .keep_alive_while_idle(true)
            .http2_keep_alive_interval(interval)
            .keep_alive_timeout(timeout);
    }
    if let Some(timeout) = options.connect_timeout {
        endpoint = endpoint.connect_timeout(timeout);
    }
    Ok(endpoint)
}

/// Puts the metadata etcd reads on every request: the token (except on the request that
/// obtains it) and, when asked for, `hasleader`.
#[derive(Clone)]
struct Metadata {
    require_leader: bool,
    token: Token,
}

impl tonic::service::Interceptor for Metadata {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        let authenticating = request
            .extensions()
            .get::<GrpcMethod>()
            .is_some_and(|m| m.service() == "etcdserverpb.Auth" && m.method() == "Authenticate");
        if !authenticating {
            let token = self.token.read().expect("etcd token lock").clone();
            if let Some(token) = token {
                request.metadata_mut().append("token", token);
            }
        }
        if self.require_leader {
            request
                .metadata_mut()
                .append("hasleader", AsciiMetadataValue::from_static("true"));
        }
        Ok(request)
    }
}

/// The end of the range of every key that starts with `prefix`: the prefix with its last byte
/// below 0xff incremented (`[0]`, every key, when there is none).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    match prefix.iter().rposition(|&byte| byte < 0xff) {
        Some(last) => {
            let mut end = prefix[..=last].to_vec();
            end[last] += 1;
            end
        }
        None => vec![0],
    }
}

/// A watch stream: watches are added and progress asked for on it, their events read from it.
#[derive(Debug)]
pub struct WatchStream {
    requests: mpsc::Sender<WatchRequest>,
    responses: tonic::Streaming<WatchResponse>,
}

impl WatchStream {
    /// Adds a watch to the stream; its answers come with the id etcd gives it.
    pub async fn watch(&mut self, request: WatchCreateRequest) -> Result<(), Error> {
        self.send(watch_request::RequestUnion::CreateRequest(request))
            .await
    }

    /// Asks etcd for a progress notification (a response with watch id -1) as soon as every
    /// watch on the stream has caught up.
    pub async fn request_progress(&mut self) -> Result<(), Error> {
        self.send(watch_request::RequestUnion::ProgressRequest(
            WatchProgressRequest {},
        ))
        .await
    }

    async fn send(&mut self, request: watch_request::RequestUnion) -> Result<(), Error> {
        self.requests
            .send(WatchRequest {
                request_union: Some(request),
            })
            .await
            .map_err(|e| Error::Watch(e.to_string()))
    }

    /// The next response; `None` when etcd ended the stream.
    pub async fn message(&mut self) -> Result<Option<WatchResponse>, Error> {
        Ok(self.responses.message().await?)
    }
}

/// Sends keep-alives for one lease on its stream.
#[derive(Debug)]
pub struct LeaseKeeper {
    id: i64,
    sender: mpsc::Sender<LeaseKeepAliveRequest>,
}

impl LeaseKeeper {
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Sends a keep-alive; its answer comes on the [`LeaseKeepAliveStream`].
    pub async fn keep_alive(&mut self) -> Result<(), Error> {
        self.sender
            .send(LeaseKeepAliveRequest { id: self.id })
            .await
            .map_err(|e| Error::LeaseKeepAlive(e.to_string()))
    }
}

/// The answers to a [`LeaseKeeper`]'s keep-alives.
#[derive(Debug)]
pub struct LeaseKeepAliveStream {
    responses: tonic::Streaming<LeaseKeepAliveResponse>,
}

impl LeaseKeepAliveStream {
    /// The next answer (a TTL of 0 or less: the lease is gone); `None` when the stream ended.
    pub async fn message(&mut self) -> Result<Option<LeaseKeepAliveResponse>, Error> {
        Ok(self.responses.message().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_increment_the_last_byte_below_0xff() {
        assert_eq!(prefix_end(b"/app"), b"/apq");
        assert_eq!(prefix_end(b"foo\xff"), b"fop");
        assert_eq!(prefix_end(b"\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }

    #[test]
    fn the_token_goes_everywhere_but_to_authenticate() {
        let mut metadata = Metadata {
            require_leader: true,
            token: Arc::new(RwLock::new(Some(AsciiMetadataValue::from_static("t")))),
        };
        let mut sent = |service: &'static str, method: &'static str| {
            let mut request = tonic::Request::new(());
            request
                .extensions_mut()
                .insert(GrpcMethod::new(service, method));
            let request = tonic::service::Interceptor::call(&mut metadata, request).unwrap();
            let get = |key| {
                request
                    .metadata()
                    .get(key)
                    .map(|v| v.to_str().unwrap().to_owned())
            };
            (get("token"), get("hasleader"))
        };
        let both = (Some("t".to_owned()), Some("true".to_owned()));
        assert_eq!(sent("etcdserverpb.KV", "Range"), both);
        assert_eq!(sent("etcdserverpb.Watch", "Watch"), both);
        assert_eq!(sent("etcdserverpb.Lease", "LeaseKeepAlive"), both);
        assert_eq!(
            sent("etcdserverpb.Auth", "Authenticate"),
            (None, Some("true".to_owned()))
        );
    }

    #[test]
    fn tls_needs_an_https_url() {
        let options = ConnectOptions {
            tls: Some(ClientTlsConfig::new()),
            ..ConnectOptions::default()
        };
        let error = endpoint("http://127.0.0.1:2379", &options).unwrap_err();
        assert!(matches!(error, Error::InvalidArgs(_)), "{error}");
        assert!(endpoint("https://127.0.0.1:2379", &options).is_ok());
        let plain = endpoint("127.0.0.1:2379", &ConnectOptions::default()).unwrap();
        assert_eq!(plain.uri().scheme_str(), Some("http"));
    }
}
