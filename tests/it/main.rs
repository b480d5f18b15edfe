//! Integration tests. One binary for all of them (faster to build and link); each area has its
//! own module, and tests needing a real service start it on free loopback ports.

mod support;

mod bad_input;
mod cluster_faults;
mod confd_cli;
mod confd_migration;
mod conformance;
mod consul;
mod consul_template;
mod consul_template_cli;
mod entrypoint;
mod etcd;
mod fleet;
mod haproxy;
mod haproxy_runtime;
mod haproxy_runtime_e2e;
mod messages;
mod operability;
mod packaging;
mod pipeline;
mod quickstart;
mod reliability;
mod security;
mod services;
mod static_binary;
