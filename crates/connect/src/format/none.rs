//! The `NONE` format, and every format's serde for zero columns: nothing is read from the bytes
//! (they may hold anything, e.g. the key of a keyless stream) and nothing is written.

use runnel_plan::Value;

use super::{RowSerde, SerdeError};

#[derive(Debug)]
pub(crate) struct VoidSerde;

impl RowSerde for VoidSerde {
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Option<Vec<Value>>, SerdeError> {
        Ok(bytes.map(|_| Vec::new()))
    }

    fn serialize(&self, _row: Option<&[Value]>) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignores_bytes_and_writes_nothing() {
        assert_eq!(
            VoidSerde.deserialize(Some(b"anything")).unwrap(),
            Some(vec![])
        );
        assert_eq!(VoidSerde.deserialize(None).unwrap(), None);
        assert_eq!(VoidSerde.serialize(Some(&[])).unwrap(), None);
        assert_eq!(VoidSerde.serialize(None).unwrap(), None);
    }
}
