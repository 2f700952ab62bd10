//! `Directions::concat` and `joint_similarity_matrix`: features picked from several SAEs
//! (seed 001's cross-layer heatmap), on hand-built directions whose cosines are known.

use interp_geometry::prelude::*;
use interp_geometry::Error;
use ndarray::array;

#[test]
fn joint_matrix_of_features_from_two_layers() {
    // "Layer 0": features along x and y; "layer 1": one along x (scaled), one at 45°.
    let l0 = Directions::from_rows(array![[2.0f32, 0.0, 0.0], [0.0, 1.0, 0.0]].view()).unwrap();
    let l1 =
        Directions::from_rows(array![[0.0f32, 0.0, 1.0], [5.0, 0.0, 0.0], [1.0, 1.0, 0.0]].view())
            .unwrap();
    let picked = [l0.clone(), l1.select(&[1, 2]).unwrap()];
    let stacked = Directions::concat(&picked).unwrap();
    assert_eq!((stacked.len(), stacked.dim()), (4, 3));
    assert_eq!(stacked.norms(), &[2.0, 1.0, 5.0, 2f32.sqrt()]);

    let m = joint_similarity_matrix(&picked).unwrap();
    let h = 0.5f32.sqrt();
    let want = array![
        [1.0, 0.0, 1.0, h],
        [0.0, 1.0, 0.0, h],
        [1.0, 0.0, 1.0, h],
        [h, h, h, 1.0],
    ];
    assert_eq!(m.dim(), (4, 4));
    for (g, w) in m.iter().zip(want.iter()) {
        assert!((g - w).abs() < 1e-6, "{m:?}");
    }
}

#[test]
fn concat_needs_sets_of_one_width() {
    assert!(matches!(Directions::concat(&[]), Err(Error::Empty { .. })));
    let a = Directions::from_rows(array![[1.0f32, 0.0]].view()).unwrap();
    let b = Directions::from_rows(array![[1.0f32, 0.0, 0.0]].view()).unwrap();
    assert!(matches!(
        joint_similarity_matrix(&[a, b]),
        Err(Error::DimensionMismatch { a: 2, b: 3 })
    ));
}
