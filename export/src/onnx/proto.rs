//! Small constructors for the prost ONNX types.

use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{dimension, Dimension};
use tract_onnx::pb::type_proto::{self, Tensor};
use tract_onnx::pb::{AttributeProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto};

/// One dimension of a graph input or output.
#[derive(Debug, Clone)]
pub(crate) enum Dim {
    Fixed(i64),
    Named(String),
}

pub(crate) fn value_info(name: &str, dims: Vec<Dim>) -> ValueInfoProto {
    let dim = dims
        .into_iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(n) => dimension::Value::DimValue(n),
                Dim::Named(s) => dimension::Value::DimParam(s),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(crate) fn f32_tensor(name: &str, shape: &[usize], data: &[f32]) -> TensorProto {
    TensorProto {
        dims: shape.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Float as i32,
        name: name.into(),
        raw_data: data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ..Default::default()
    }
}

pub(crate) fn i64_tensor(name: &str, shape: &[usize], data: &[i64]) -> TensorProto {
    TensorProto {
        dims: shape.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Int64 as i32,
        name: name.into(),
        raw_data: data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ..Default::default()
    }
}

pub(crate) fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

pub(crate) fn attr_float(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Float as i32,
        f,
        ..Default::default()
    }
}

pub(crate) fn attr_ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: ints.to_vec(),
        ..Default::default()
    }
}

pub(crate) fn int8_tensor(name: &str, shape: &[usize], data: &[i8]) -> TensorProto {
    TensorProto {
        dims: shape.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Int8 as i32,
        name: name.into(),
        raw_data: data.iter().map(|&x| x as u8).collect(),
        ..Default::default()
    }
}

pub(crate) fn i32_tensor(name: &str, shape: &[usize], data: &[i32]) -> TensorProto {
    TensorProto {
        dims: shape.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Int32 as i32,
        name: name.into(),
        raw_data: data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ..Default::default()
    }
}

pub(crate) fn u8_tensor(name: &str, shape: &[usize], data: &[u8]) -> TensorProto {
    TensorProto {
        dims: shape.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Uint8 as i32,
        name: name.into(),
        raw_data: data.to_vec(),
        ..Default::default()
    }
}
