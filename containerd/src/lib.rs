//! containerd's own gRPC API, the part an image import needs: the content
//! store ([`content`]), the image store ([`images`]) and leases
//! ([`leases`]), plus the request metadata containerd keys every call on
//! ([`request`]: namespace, lease).
//!
//! A crate apart from `matic-cri`: the CRI is Kubernetes' API that
//! containerd serves through a plugin (what kubelet calls); this is
//! containerd's native API on the same socket (what `ctr` calls), with
//! its own upstream, versioning and license header. Dial either with
//! [`matic_cri::connect`]-style channels: the socket is the same.
//!
//! Must never: hold policy (which image, which namespace) — its callers
//! do — or talk to anything but the channel it is given.

/// The generated code, nested as its proto packages are (the generated
/// types refer to each other by relative paths).
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod api {
    /// `containerd.*`
    pub mod containerd {
        /// `containerd.types` (descriptors).
        pub mod types {
            tonic::include_proto!("containerd.types");
        }
        /// `containerd.services.*`
        pub mod services {
            /// `containerd.services.content`
            pub mod content {
                /// `containerd.services.content.v1`
                pub mod v1 {
                    tonic::include_proto!("containerd.services.content.v1");
                }
            }
            /// `containerd.services.images`
            pub mod images {
                /// `containerd.services.images.v1`
                pub mod v1 {
                    tonic::include_proto!("containerd.services.images.v1");
                }
            }
            /// `containerd.services.leases`
            pub mod leases {
                /// `containerd.services.leases.v1`
                pub mod v1 {
                    tonic::include_proto!("containerd.services.leases.v1");
                }
            }
        }
    }
}

pub use api::containerd::services::content::v1 as content;
pub use api::containerd::services::images::v1 as images;
pub use api::containerd::services::leases::v1 as leases;
pub use api::containerd::types;

pub mod request;
