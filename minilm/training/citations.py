"""What a model card says about a loss: its sentence-transformers counterpart, its settings and its citation.

Every loss minilm ships (``registry.LOSSES``) has an entry here, with the BibTeX sentence-transformers 6.2 gives its
counterpart (tests/test_card.py compares them). A user's loss is cited when it carries a ``citation`` attribute
(a BibTeX string); without one, its card cites nothing for it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

from minilm.card import LossCard
from minilm.training.registry import LOSSES, MATRYOSHKA_KEYS, resolve_loss, settable

HERMANS = """@misc{hermans2017defense,
    title={In Defense of the Triplet Loss for Person Re-Identification},
    author={Alexander Hermans and Lucas Beyer and Bastian Leibe},
    year={2017},
    eprint={1703.07737},
    archivePrefix={arXiv},
    primaryClass={cs.CV}
}"""
OORD = """@misc{oord2019representationlearningcontrastivepredictive,
      title={Representation Learning with Contrastive Predictive Coding},
      author={Aaron van den Oord and Yazhe Li and Oriol Vinyals},
      year={2019},
      eprint={1807.03748},
      archivePrefix={arXiv},
      primaryClass={cs.LG},
      url={https://arxiv.org/abs/1807.03748},
}"""
GUNTHER = """@misc{günther2024jinaembeddings28192token,
      title={Jina Embeddings 2: 8192-Token General-Purpose Text Embeddings for Long Documents},
      author={Michael Günther and Jackmin Ong and Isabelle Mohr and Alaeddine Abdessalem and Tanguy Abel and Mohammad Kalim Akram and Susana Guzman and Georgios Mastrapas and Saba Sturua and Bo Wang and Maximilian Werk and Nan Wang and Han Xiao},
      year={2024},
      eprint={2310.19923},
      archivePrefix={arXiv},
      primaryClass={cs.CL},
      url={https://arxiv.org/abs/2310.19923},
}"""
HUANG = """@article{10531646,
    author={Huang, Xiang and Peng, Hao and Zou, Dongcheng and Liu, Zhiwei and Li, Jianxin and Liu, Kay and Wu, Jia and Su, Jianlin and Yu, Philip S.},
    journal={IEEE/ACM Transactions on Audio, Speech, and Language Processing},
    title={CoSENT: Consistent Sentence Embedding via Similarity Ranking},
    year={2024},
    doi={10.1109/TASLP.2024.3402087}
}"""
KUSUPATI = """@misc{kusupati2024matryoshka,
    title={Matryoshka Representation Learning},
    author={Aditya Kusupati and Gantavya Bhatt and Aniket Rege and Matthew Wallingford and Aditya Sinha and Vivek Ramanujan and William Howard-Snyder and Kaifeng Chen and Sham Kakade and Prateek Jain and Ali Farhadi},
    year={2024},
    eprint={2205.13147},
    archivePrefix={arXiv},
    primaryClass={cs.LG}
}"""


@dataclass(frozen=True)
class Reference:
    st_name: str  # the sentence-transformers loss class it matches
    citation: str  # BibTeX


REFERENCES: dict[str, Reference] = {
    "triplet": Reference("TripletLoss", HERMANS),
    "batch_hard_triplet": Reference("BatchHardTripletLoss", HERMANS),
    "batch_semi_hard_triplet": Reference("BatchSemiHardTripletLoss", HERMANS),
    "batch_all_triplet": Reference("BatchAllTripletLoss", HERMANS),
    "mnrl": Reference("MultipleNegativesRankingLoss", OORD),
    "cosent": Reference("CoSENTLoss", HUANG),
}
# mnrl with symmetric = true is sentence-transformers' MNRL with directions (query_to_doc, doc_to_query),
# partition_mode "per_direction", which it cites differently.
MNRL_SYMMETRIC = Reference("MultipleNegativesRankingLoss", GUNTHER)
MATRYOSHKA = Reference("MatryoshkaLoss", KUSUPATI)


def reference_of(name: str, settings: dict) -> Reference | None:
    if name == "mnrl" and settings.get("symmetric"):
        return MNRL_SYMMETRIC
    return REFERENCES.get(name) if name in LOSSES else None


def describe_loss(name: str, settings: dict, base_dir: str | Path | None = None) -> LossCard:
    """The card's view of the recipe's ``[loss]``: every setting (defaults filled in), counterpart and citations."""
    loss = resolve_loss(name, base_dir)
    signature = inspect.signature(loss).parameters
    given = {k: v for k, v in settings.items() if k not in MATRYOSHKA_KEYS}
    shown = {key: given.get(key, signature[key].default) for key in settable(loss)}
    function = f"{loss.__module__}.{loss.__qualname__}"
    found = reference_of(name, settings)
    st_names, citations = [], {}
    if found is not None:
        st_names.append(found.st_name)
        citations[found.st_name] = found.citation
    elif isinstance(getattr(loss, "citation", None), str):
        citations[getattr(loss, "__name__", name)] = loss.citation
    if settings.get("matryoshka_dims") is not None:
        shown = {"loss": found.st_name if found else function, "loss_settings": shown,
                 **{k: settings[k] for k in MATRYOSHKA_KEYS if settings.get(k) is not None}}
        st_names.insert(0, MATRYOSHKA.st_name)
        citations = {MATRYOSHKA.st_name: MATRYOSHKA.citation, **citations}
    return LossCard(name=name, function=function, settings=shown, st_names=st_names, citations=citations)
