//! `matic-boot`: the GPT and the A/B slot state of a MaticOS disk.
#![cfg_attr(not(feature = "std"), no_std)]
