//! Mapping of the FlowCallout policy from its TOML table to the model: `shared_flow_bundle` and
//! `parameters`.
//!
//! An `impl` block of the [`Mapper`] in `mapper.rs`; `mod.rs` calls [`Mapper::flow_callout`].

use super::mapper::Mapper;
use super::shape::FlowCalloutT;
use crate::diag::Located;
use crate::policy::model::{CalloutParameter, FlowCallout};

impl Mapper<'_, '_, '_> {
    pub(super) fn flow_callout(&mut self, t: FlowCalloutT) -> Option<FlowCallout> {
        let shared_flow_bundle =
            self.required(t.shared_flow_bundle, "shared_flow_bundle", "my-shared-flow")?;
        let mut parameters: Vec<CalloutParameter> = Vec::new();
        for p in t.parameters {
            let pos = self.at(&p);
            let p = p.into_inner();
            let name = p.name.trim();
            if name.is_empty() {
                self.sink.error(
                    pos,
                    "a parameter without a name",
                    Some("write { name = \"variable\", value = \"…\" } or { name = \"variable\", ref = \"other.variable\" }".into()),
                );
                continue;
            }
            if parameters.iter().any(|q| q.name.value == name) {
                self.sink.warning(
                    pos,
                    format!("a second parameter named `{name}`; the last one wins"),
                    Some("remove one of them".into()),
                );
            }
            parameters.push(CalloutParameter {
                name: Located::new(name.to_owned(), pos),
                reference: p
                    .reference
                    .map(|r| r.trim().to_owned())
                    .filter(|r| !r.is_empty()),
                literal: p.value.filter(|v| !v.is_empty()),
            });
        }
        Some(FlowCallout {
            shared_flow_bundle,
            parameters,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::outcome;
    use crate::policy::model::Policy;

    #[test]
    fn flow_callout_and_raise_fault_tables() {
        let fc = outcome(
            "[FlowCallout]\nname = \"FC\"\nshared_flow_bundle = \"auth\"\nparameters = [{ name = \"aud\", value = \"x\" }, { name = \"tok\", ref = \"request.header.t\" }]\n",
        );
        let Some(Policy::FlowCallout(fc)) = fc.policy.map(|p| p.policy) else {
            panic!("{:?}", fc.diagnostics)
        };
        assert_eq!(fc.shared_flow_bundle.value, "auth");
        assert_eq!(
            fc.parameters[1].reference.as_deref(),
            Some("request.header.t")
        );

        let rf = outcome("[RaiseFault]\nname = \"RF\"\n[RaiseFault.set]\nstatus_code = \"404\"\n");
        let Some(Policy::RaiseFault(rf)) = rf.policy.map(|p| p.policy) else {
            panic!("{:?}", rf.diagnostics)
        };
        assert!(rf.fault_response.ignore_unresolved_variables);
        assert!(rf.fault_response.set.is_some());
    }
}
