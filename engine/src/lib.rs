//! Squall: topologies of spouts and bolts in the Storm model, run on pinned executor
//! threads joined by lock-free rings.
