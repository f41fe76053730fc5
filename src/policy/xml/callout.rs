//! Mapping of the FlowCallout policy: `<SharedFlowBundle>` and `<Parameters>`.
//!
//! An `impl` block of the [`Mapper`] in `mapper.rs`; `mod.rs` calls [`Mapper::flow_callout`].
//! Which shared flow the name resolves to, and whether calls form a cycle, is decided when the
//! stage is built (`config::shared`), with every shared flow of the environment in hand.

use super::mapper::Mapper;
use super::tree::Node;
use crate::diag::Located;
use crate::policy::model::{CalloutParameter, FlowCallout};

impl Mapper<'_, '_> {
    pub(super) fn flow_callout(&mut self, root: &Node) -> Option<FlowCallout> {
        let bundle = root.child("SharedFlowBundle")?;
        let Some(shared_flow_bundle) = bundle.located_text() else {
            self.sink.error(
                bundle.pos,
                "empty <SharedFlowBundle> in <FlowCallout>",
                Some("name the shared flow bundle to run, e.g. <SharedFlowBundle>my-shared-flow</SharedFlowBundle>".into()),
            );
            return None;
        };
        let mut parameters: Vec<CalloutParameter> = Vec::new();
        for p in root
            .child("Parameters")
            .into_iter()
            .flat_map(|ps| ps.children_named("Parameter"))
        {
            let Some(name) = p.attr_value("name") else {
                self.sink.error(
                    p.pos,
                    "<Parameter> without a name attribute",
                    Some("write <Parameter name=\"variable\">value</Parameter> or <Parameter name=\"variable\" ref=\"other.variable\"/>".into()),
                );
                continue;
            };
            if parameters.iter().any(|q| q.name.value == name) {
                self.sink.warning(
                    p.pos,
                    format!("a second <Parameter name=\"{name}\">; the last one wins"),
                    Some("remove one of them".into()),
                );
            }
            let literal = Some(p.trimmed()).filter(|t| !t.is_empty());
            let reference = p.attr_value("ref");
            if literal.is_none() && reference.is_none() {
                self.sink.warning(
                    p.pos,
                    format!("<Parameter name=\"{name}\"> has neither a value nor a ref; the shared flow sees it empty"),
                    None,
                );
            }
            parameters.push(CalloutParameter {
                name: Located::new(name.to_owned(), p.pos),
                reference: reference.map(str::to_owned),
                literal: literal.map(str::to_owned),
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
    use super::super::test_util::{messages, parse_ok};
    use crate::policy::model::Policy;

    #[test]
    fn maps_the_bundle_name_and_parameters_of_both_forms() {
        let p = parse_ok(
            r#"<FlowCallout name="FC-auth" continueOnError="true">
                 <DisplayName>FC-auth</DisplayName>
                 <SharedFlowBundle> gcp-sa-auth-v1 </SharedFlowBundle>
                 <Parameters>
                   <Parameter name="audience">https://x.example</Parameter>
                   <Parameter name="token" ref="request.header.token"/>
                 </Parameters>
               </FlowCallout>"#,
        );
        let Policy::FlowCallout(fc) = p.policy else {
            panic!("not a FlowCallout")
        };
        assert!(p.common.continue_on_error);
        assert_eq!(fc.shared_flow_bundle.value, "gcp-sa-auth-v1");
        assert_eq!(fc.parameters.len(), 2);
        assert_eq!(fc.parameters[0].name.value, "audience");
        assert_eq!(
            fc.parameters[0].literal.as_deref(),
            Some("https://x.example")
        );
        assert_eq!(
            fc.parameters[1].reference.as_deref(),
            Some("request.header.token")
        );
        assert_eq!(fc.parameters[1].literal, None);
    }

    #[test]
    fn a_missing_or_empty_bundle_name_is_an_error() {
        let missing = messages(r#"<FlowCallout name="FC"><Parameters/></FlowCallout>"#);
        assert!(
            missing.iter().any(|m| m.contains("SharedFlowBundle")),
            "{missing:?}"
        );
        let empty = messages(r#"<FlowCallout name="FC"><SharedFlowBundle/></FlowCallout>"#);
        assert!(
            empty.iter().any(|m| m.contains("empty <SharedFlowBundle>")),
            "{empty:?}"
        );
        let unnamed = messages(
            r#"<FlowCallout name="FC"><SharedFlowBundle>x</SharedFlowBundle><Parameters><Parameter>v</Parameter></Parameters></FlowCallout>"#,
        );
        assert!(
            unnamed.iter().any(|m| m.contains("without a name")),
            "{unnamed:?}"
        );
    }
}
