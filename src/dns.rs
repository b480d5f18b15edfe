//! DNS SRV lookups for the `lookup_srv` template function.
//!
//! Rendering is synchronous, the resolver is async: a lookup blocks the rendering thread with
//! `block_in_place` when called on a multi-threaded tokio runtime (terad's own), and runs a
//! throw-away runtime otherwise (benchmarks, tests).

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::RData;

/// One SRV answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    /// The target host name, fully qualified with its trailing dot, as Go's resolver gives it.
    pub target: String,
    pub port: u16,
    pub priority: u16,
    pub weight: u16,
}

/// Looks up `_service._proto.name` (just `name` when service and proto are empty, like Go's
/// `net.LookupSRV`) with the system's resolver configuration.
pub fn lookup_srv(
    service: &str,
    proto: &str,
    name: &str,
) -> Result<Vec<SrvRecord>, hickory_resolver::net::NetError> {
    let query = if service.is_empty() && proto.is_empty() {
        name.to_owned()
    } else {
        format!("_{service}._{proto}.{name}")
    };
    block_on(async move {
        let resolver = TokioResolver::builder_tokio()?.build()?;
        let lookup = resolver.srv_lookup(query.as_str()).await?;
        Ok(lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::SRV(srv) => Some(SrvRecord {
                    target: srv.target.to_string(),
                    port: srv.port,
                    priority: srv.priority,
                    weight: srv.weight,
                }),
                _ => None,
            })
            .collect())
    })
}

fn block_on<T: Send>(future: impl Future<Output = T> + Send) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| handle.block_on(future))
        }
        // No runtime, or one that cannot block in place: a private thread with its own runtime.
        _ => std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a current-thread runtime can always be built")
                        .block_on(future)
                })
                .join()
                .expect("the lookup thread does not panic")
        }),
    }
}
