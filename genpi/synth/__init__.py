"""Self role-playing data synthesis (step 1 of the method): pseudo inputs, teacher / student outputs,
reasons and role-played conversations, written to DATA_DIR/records.jsonl + meta.json.

    from genpi.generate import SameSpec   # or LocalSpec(ref), ApiSpec(api_base, api_model)
    from genpi.synth import synthesize
    config = SynthConfig.from_preset("quick", scenario, num_inputs=32, max_turns=3)
    summary = synthesize(scenario, model_ref, SameSpec(), "data/", config)
"""

from ..lazy import lazy_exports

_EXPORTS = {
    'SynthConfig': '.config',
    'FilterConfig': '.filters',
    'InputFilter': '.filters',
    'format_summary': '.pipeline',
    'synthesize': '.pipeline',
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
