//! `matic-tests`: helpers shared by the integration and end-to-end tests.
