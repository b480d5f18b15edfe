//! Why a configuration value cannot be used. The message names the value; whoever reports it
//! adds the file, line and key ([`crate::diagnostic::ConfigError`]).

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    #[error("invalid duration {text:?}: {source} (write e.g. \"30s\" or \"500ms\")")]
    Duration {
        text: String,
        #[source]
        source: humantime::DurationError,
    },
    #[error("invalid wait {text:?}: {source} (write MIN[:MAX], e.g. \"100ms:1s\")")]
    Wait {
        text: String,
        #[source]
        source: humantime::DurationError,
    },
    #[error("invalid wait {0:?}: MAX is shorter than MIN")]
    WaitOrder(String),
    #[error("unknown signal {0:?}; use a name such as SIGHUP or SIGUSR2")]
    Signal(String),
    #[error("invalid mode {0:?}: expected octal digits such as \"0644\"")]
    ModeDigits(String),
    #[error("invalid mode {0:?}: above 07777, the largest file mode")]
    ModeRange(String),
    #[error("unknown template engine {0:?}: use \"auto\", \"go\", \"consul-template\" or \"tera\"")]
    Engine(String),
    #[error("an empty node")]
    EmptyNode,
    #[error("node {0:?} must be an http:// or https:// URL or host:port")]
    NodeScheme(String),
    #[error("node {0:?} must be host:port, without a path")]
    NodePath(String),
    #[error("must not be empty")]
    EmptyTemplate,
    #[error("{src:?} must be relative to {}", templates.display())]
    AbsoluteTemplate { src: String, templates: PathBuf },
    #[error("{src:?} must be a relative path")]
    RootedTemplate { src: String },
    #[error("{src:?} points outside the templates directory {}", templates.display())]
    TemplateOutside { src: String, templates: PathBuf },
    #[error("template {:?} not found", .0.display().to_string())]
    TemplateMissing(PathBuf),
    #[error("{src:?} resolves to {}, outside the templates directory", real.display())]
    TemplateLinksOutside { src: String, real: PathBuf },
}
