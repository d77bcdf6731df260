//! Owned by the spsc/wait developer (work in progress; claimed 05:33:20).
