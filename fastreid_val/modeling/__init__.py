"""VAL's model components. Importing this module registers them in FastReID's registries."""
from . import heads as _heads  # noqa: F401  (only registration)
from . import meta_arch as _meta_arch  # noqa: F401  (only registration)
from . import mgn as _mgn  # noqa: F401  (only registration)
from . import pretrained as _pretrained  # noqa: F401  (only registration)
from . import side_information as _side_information  # noqa: F401  (only registration)
from . import vit as _vit  # noqa: F401  (only registration)
from .heads import IdentityViewpointHead
from .losses import partition_loss, reunion_loss
from .meta_arch import ViewpointBaseline
from .mgn import ViewpointMGN
from .side_information import SIEBaseline
from .vit import SideInformationViT
from .val_loss import ViewpointAwareLoss

__all__ = ["IdentityViewpointHead", "SIEBaseline", "SideInformationViT", "ViewpointAwareLoss", "ViewpointBaseline",
           "ViewpointMGN", "partition_loss", "reunion_loss"]
