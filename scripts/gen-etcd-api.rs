//! The generator behind `scripts/gen-etcd-api.sh`, built by that script in a throwaway cargo
//! project (it is no part of terad's build).
//!
//! Usage: `gen-etcd-api DESCRIPTORS OUT_DIR`, where DESCRIPTORS is the `FileDescriptorSet` that
//! `protoc --include_imports --include_source_info` made of etcd's `rpc.proto`.
//!
//! etcd's API has some 130 messages and 50 calls; terad makes ten of those calls. The descriptor
//! set is cut down to them (and the messages they reach) before tonic and prost see it, so the
//! committed code is what terad uses and nothing else: a call added to [`CALLS`] brings its
//! messages with it.

use std::collections::{BTreeSet, HashMap};

use prost::Message;
use prost_types::{DescriptorProto, FileDescriptorSet, source_code_info::Location};

/// The etcd calls terad makes, as (service, method) of package `etcdserverpb`.
const CALLS: &[(&str, &str)] = &[
    ("KV", "Range"),
    ("KV", "Put"),
    ("KV", "DeleteRange"),
    ("KV", "Txn"),
    ("Watch", "Watch"),
    ("Lease", "LeaseGrant"),
    ("Lease", "LeaseRevoke"),
    ("Lease", "LeaseKeepAlive"),
    ("Maintenance", "Status"),
    ("Auth", "Authenticate"),
];
const PACKAGE: &str = "etcdserverpb";

// Field numbers in `FileDescriptorProto` and `ServiceDescriptorProto`, for source locations.
const FILE_MESSAGE: i32 = 4;
const FILE_ENUM: i32 = 5;
const FILE_SERVICE: i32 = 6;
const SERVICE_METHOD: i32 = 2;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, descriptors, out_dir] = args.as_slice() else {
        eprintln!("usage: gen-etcd-api DESCRIPTORS OUT_DIR");
        std::process::exit(2);
    };
    let bytes = std::fs::read(descriptors)
        .unwrap_or_else(|e| panic!("cannot read descriptors {descriptors:?}: {e}"));
    let mut set = FileDescriptorSet::decode(bytes.as_slice())
        .unwrap_or_else(|e| panic!("cannot decode descriptors {descriptors:?}: {e}"));
    keep_calls(&mut set);
    let reached = reached_types(&set);
    keep_types(&mut set, &reached);
    tonic_prost_build::configure()
        .build_server(false)
        .build_transport(false)
        .emit_rerun_if_changed(false)
        .out_dir(out_dir)
        .compile_fds(set)
        .unwrap_or_else(|e| panic!("cannot generate into {out_dir:?}: {e}"));
}

/// Drops every service and method of [`PACKAGE`] that is not in [`CALLS`].
fn keep_calls(set: &mut FileDescriptorSet) {
    let mut found = 0;
    for file in &mut set.file {
        if file.package() != PACKAGE {
            continue;
        }
        let mut services = Vec::new();
        let mut methods = HashMap::new();
        for (index, service) in file.service.iter_mut().enumerate() {
            let name = service.name().to_owned();
            let mut kept = Vec::new();
            for (method_index, method) in service.method.iter().enumerate() {
                if CALLS.contains(&(name.as_str(), method.name())) {
                    kept.push(method_index);
                }
            }
            if kept.is_empty() {
                continue;
            }
            found += kept.len();
            service.method = kept.iter().map(|&m| service.method[m].clone()).collect();
            methods.insert(
                services.len(),
                kept.iter()
                    .enumerate()
                    .map(|(new, &old)| (old, new))
                    .collect::<HashMap<_, _>>(),
            );
            services.push(index);
        }
        file.service = services.iter().map(|&s| file.service[s].clone()).collect();
        let service_map: HashMap<usize, usize> = services
            .iter()
            .enumerate()
            .map(|(new, &old)| (old, new))
            .collect();
        remap_locations(
            file.source_code_info.as_mut().map(|i| &mut i.location),
            |path| {
                if path.first() != Some(&FILE_SERVICE) || path.len() < 2 {
                    return Some(path.to_vec());
                }
                let new_service = *service_map.get(&usize::try_from(path[1]).ok()?)?;
                let mut path = path.to_vec();
                path[1] = i32::try_from(new_service).ok()?;
                if path.len() >= 4 && path[2] == SERVICE_METHOD {
                    let old = usize::try_from(path[3]).ok()?;
                    path[3] = i32::try_from(*methods[&new_service].get(&old)?).ok()?;
                }
                Some(path)
            },
        );
    }
    assert_eq!(found, CALLS.len(), "every call in CALLS is in etcd's API");
}

/// The fully qualified names (`.package.Name`) of the top-level messages and enums that the
/// kept calls reach.
fn reached_types(set: &FileDescriptorSet) -> BTreeSet<String> {
    let mut messages: HashMap<String, &DescriptorProto> = HashMap::new();
    let mut packages = Vec::new();
    for file in &set.file {
        packages.push(file.package().to_owned());
        for message in &file.message_type {
            messages.insert(format!(".{}.{}", file.package(), message.name()), message);
        }
    }
    // Longest first, so `.google.protobuf.X` is not taken for package `google`.
    packages.sort_by_key(|p| std::cmp::Reverse(p.len()));
    let top_level = |name: &str| -> String {
        for package in &packages {
            if let Some(rest) = name.strip_prefix(&format!(".{package}.")) {
                let first = rest.split('.').next().unwrap_or(rest);
                return format!(".{package}.{first}");
            }
        }
        panic!("type {name:?} is in no package of the descriptor set")
    };

    let mut reached = BTreeSet::new();
    let mut queue: Vec<String> = Vec::new();
    for file in set.file.iter().filter(|f| f.package() == PACKAGE) {
        for method in file.service.iter().flat_map(|s| &s.method) {
            queue.push(top_level(method.input_type()));
            queue.push(top_level(method.output_type()));
        }
    }
    while let Some(name) = queue.pop() {
        if !reached.insert(name.clone()) {
            continue;
        }
        // An enum reaches nothing further.
        let Some(message) = messages.get(&name) else {
            continue;
        };
        let mut nested = vec![*message];
        while let Some(message) = nested.pop() {
            nested.extend(&message.nested_type);
            for field in &message.field {
                if field.type_name.is_some() {
                    queue.push(top_level(field.type_name()));
                }
            }
        }
    }
    reached
}

/// Drops every top-level message and enum not in `reached`, and the files left empty.
fn keep_types(set: &mut FileDescriptorSet, reached: &BTreeSet<String>) {
    for file in &mut set.file {
        let package = file.package().to_owned();
        let is_reached = |name: &str| reached.contains(&format!(".{package}.{name}"));
        let messages: Vec<usize> = (0..file.message_type.len())
            .filter(|&i| is_reached(file.message_type[i].name()))
            .collect();
        let enums: Vec<usize> = (0..file.enum_type.len())
            .filter(|&i| is_reached(file.enum_type[i].name()))
            .collect();
        let renumber = |kept: &[usize]| -> HashMap<usize, usize> {
            kept.iter()
                .enumerate()
                .map(|(new, &old)| (old, new))
                .collect()
        };
        let (message_map, enum_map) = (renumber(&messages), renumber(&enums));
        file.message_type = messages
            .iter()
            .map(|&i| file.message_type[i].clone())
            .collect();
        file.enum_type = enums.iter().map(|&i| file.enum_type[i].clone()).collect();
        remap_locations(
            file.source_code_info.as_mut().map(|i| &mut i.location),
            |path| {
                let map = match path.first() {
                    Some(&FILE_MESSAGE) => &message_map,
                    Some(&FILE_ENUM) => &enum_map,
                    _ => return Some(path.to_vec()),
                };
                let Some(&old) = path.get(1) else {
                    return Some(path.to_vec());
                };
                let mut path = path.to_vec();
                path[1] = i32::try_from(*map.get(&usize::try_from(old).ok()?)?).ok()?;
                Some(path)
            },
        );
    }
    set.file
        .retain(|f| !f.message_type.is_empty() || !f.enum_type.is_empty() || !f.service.is_empty());
    let kept: BTreeSet<String> = set.file.iter().map(|f| f.name().to_owned()).collect();
    for file in &mut set.file {
        file.dependency.retain(|d| kept.contains(d));
        file.public_dependency.clear();
        file.weak_dependency.clear();
    }
}

/// Rewrites the path of every source location (which ties a comment to what it documents) with
/// `remap`, dropping those it returns `None` for: the paths count messages, enums, services and
/// methods by position, and the positions change as they are dropped.
fn remap_locations(
    locations: Option<&mut Vec<Location>>,
    remap: impl Fn(&[i32]) -> Option<Vec<i32>>,
) {
    let Some(locations) = locations else {
        return;
    };
    locations.retain_mut(|location| match remap(&location.path) {
        Some(path) => {
            location.path = path;
            true
        }
        None => false,
    });
}
