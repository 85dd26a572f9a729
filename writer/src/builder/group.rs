//! Writing a codec group ([`crate::codec::EncodedGroup`]): its shared
//! palettes and basis once, then each member tensor. The pipeline, the
//! codec tests and the fuzzers all write groups through these two calls, so
//! a group has one serializer: the builder's.

use std::io::{Seek, Write};

use super::{BasisId, EncodedTensor, PaletteId, Quality, SlotL, Stage, TensorHeader, Writer};
use crate::codec::{EncodedGroup, SCALE_ELEM};
use crate::error::WriteError;

/// The shared objects of a group once written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupIds {
    /// One palette per stage.
    pub palettes: Vec<PaletteId>,
    /// The SlotL basis, when the group has one.
    pub basis: Option<BasisId>,
}

impl<W: Write + Seek> Writer<W> {
    /// Adds the palettes (each with a FisherZ table when `fisher_z`) and the
    /// basis of `group`.
    ///
    /// # Errors
    /// As [`Writer::add_palette`], [`Writer::add_fisher_z`] and
    /// [`Writer::add_basis`].
    pub fn add_group_objects(
        &mut self,
        group: &EncodedGroup,
        fisher_z: bool,
    ) -> Result<GroupIds, WriteError> {
        let mut palettes = Vec::with_capacity(group.palettes.len());
        for p in &group.palettes {
            let id = self.add_palette(p.spec())?;
            if fisher_z {
                self.add_fisher_z(id)?;
            }
            palettes.push(id);
        }
        let basis = match &group.basis {
            Some(b) => Some(self.add_basis(group.n_cols, group.spec.elem, b)?),
            None => None,
        };
        Ok(GroupIds { palettes, basis })
    }

    /// Adds member `member` of `group`, whose shared objects are `ids`, as
    /// the tensor `header` (its shape's matrix view must be the member's
    /// rows x the group's columns) with `quality` recorded.
    ///
    /// # Errors
    /// [`WriteError::UnknownMember`], or as [`Writer::add_encoded_tensor`].
    pub fn add_group_member(
        &mut self,
        group: &EncodedGroup,
        ids: &GroupIds,
        member: usize,
        header: TensorHeader<'_>,
        quality: Option<Quality>,
    ) -> Result<(), WriteError> {
        let e = group.tensors.get(member).ok_or(WriteError::UnknownMember {
            member,
            count: group.tensors.len(),
        })?;
        let stages: Vec<Stage<'_>> = ids
            .palettes
            .iter()
            .zip(&e.codes)
            .map(|(&palette, codes)| Stage::new(palette, codes))
            .collect();
        let slot_l = e.slot.as_ref().zip(ids.basis).map(|(s, basis)| SlotL {
            basis,
            coef: &s.coef,
            scale: s.slot_scale,
        });
        let t = EncodedTensor {
            scale: e.scales.as_deref().map(|s| (SCALE_ELEM, s)),
            slot_l,
            quality,
            ..EncodedTensor::of(header, &stages)
        };
        self.add_encoded_tensor(t)
    }
}
