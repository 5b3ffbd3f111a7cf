//! `cloudforet:collector/types`: type definitions only, no functions.

use crate::bindings::current::cloudforet::collector::types;

/// Holds nothing: the interface has no functions.
pub struct TypesCtx;

impl types::Host for TypesCtx {}
