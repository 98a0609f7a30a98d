"""Knowledge tracing: predict a student's next answer from the answers so far.

``data/`` reads the 3-line and raw formats into student sequences and DataModules, ``nets/`` holds the plain
``nn.Module`` networks, ``models/`` the LightningModules that train them (DKT, DKVMN, SAKT, AKT over one
shared base class), and :class:`KnowledgeTracer` steps a trained model one answer at a time.
"""

from kt.tracing.data.assist2009 import Assist2009DataModule
from kt.tracing.data.dkvmn import DKVMNDataModule
from kt.tracing.data.synthetic import SyntheticKTDataModule
from kt.tracing.knowledge_state import KnowledgeTracer
from kt.tracing.models.akt import AKT
from kt.tracing.models.dkt import DKT
from kt.tracing.models.dkvmn import DKVMN
from kt.tracing.models.sakt import SAKT

__all__ = [
    "AKT", "DKT", "DKVMN", "SAKT",
    "Assist2009DataModule", "DKVMNDataModule", "KnowledgeTracer", "SyntheticKTDataModule",
]
