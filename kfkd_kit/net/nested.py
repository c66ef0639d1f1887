"""Which nets a model holds: the one place that knows how this toolkit's models nest
(a net in a Pipeline, Pipelines in Specialists or an ensemble, any of them in FlipTTA or
FrozenEstimator)."""
from __future__ import annotations

from skorch import NeuralNet


def nets(model, fitted=True) -> dict:
    """{name: KeypointNet} inside any model of this toolkit: the one place that knows how
    they nest. A net or a Pipeline gives {"net": net}; fitted Specialists give one per
    group, a fitted FoldEnsemble "fold k" (or "fold k <group>"), a SeedEnsemble "seed s";
    FlipTTA and FrozenEstimator give their model's. ``fitted=False`` walks the templates
    instead (the unfitted ``estimator`` of Specialists, an ensemble or FlipTTA, as
    set_params reaches it), so an unfitted model gives its one template net. Empty when
    there is no net."""
    if isinstance(model, NeuralNet):
        return {"net": model}
    if fitted and hasattr(model, "models_"):             # Specialists
        return {name: net for group, member in model.models_.items()
                for name, net in _renamed(nets(member), group).items()}
    if fitted and hasattr(model, "estimators_"):         # FoldEnsemble, SeedEnsemble
        return {name: net for label, member in zip(model.member_names(), model.estimators_)
                for name, net in _renamed(nets(member), label).items()}
    if fitted and hasattr(model, "estimator_"):          # FlipTTA
        return nets(model.estimator_)
    if hasattr(model, "named_steps"):
        steps = [step for step in model.named_steps.values() if isinstance(step, NeuralNet)]
        return {"net": steps[0]} if steps else {}
    if hasattr(model, "estimator"):                      # FrozenEstimator, or a template
        return nets(model.estimator, fitted)
    return {}


def histories(model) -> dict:
    """{name: skorch history} of the nets inside a fitted model (``nets``'s names)."""
    return {name: net.history for name, net in nets(model).items()}


def _renamed(nets, prefix):
    return {prefix if name == "net" else f"{prefix} {name}": net for name, net in nets.items()}


def net_prefix(estimator) -> str:
    """The set_params prefix of the KeypointNet inside ``estimator``: "" for the net,
    "net__" for a Pipeline, "estimator__net__" for Specialists, FlipTTA or FoldEnsemble."""
    if isinstance(estimator, NeuralNet):
        return ""
    if hasattr(estimator, "named_steps"):
        return "net__"
    inner = getattr(estimator, "estimator", None)
    if inner is None:
        raise ValueError(f"no net inside {type(estimator).__name__}")
    return "estimator__" + net_prefix(inner)


def inner_net(estimator) -> NeuralNet:
    """The (first) KeypointNet template inside ``estimator``: the one set_params reaches."""
    found = nets(estimator, fitted=False)
    if not found:
        raise ValueError(f"no net inside {type(estimator).__name__}")
    return next(iter(found.values()))
