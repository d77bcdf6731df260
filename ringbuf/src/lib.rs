//! Lock-free single-producer single-consumer rings.
//!
//! (Crate documentation with the model of each ring and a runnable example: to be written
//! by the owners of `spsc`, `wait` and `record`.)

mod sync;

pub mod record;
pub mod spsc;
pub mod wait;
