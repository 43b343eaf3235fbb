/* Checks kernels/fastk_gradient.h built for one target (see test_kernel_targets.py): the
 * loader picks one clone per CPU, so the others are never run by the Python tests.
 * Compares fastk_partial_gradient (least squares and logistic) and fastk_mean_rows with
 * plain loops on shapes that cover every remainder path; exit status 1 on a mismatch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "fastk_gradient.h"
int main(){ int sizes[][2]={{1,1},{3,5},{5,9},{7,37},{40,100},{9,64},{4,33}};
 double maxrel=0;
 for(int t=0;t<7;t++){ int s=sizes[t][0], d=sizes[t][1];
  double *X=malloc(8*s*d),*y=malloc(8*s),*w=malloc(8*d),*g=calloc(d,8),*g2=calloc(d,8),*r=malloc(8*s),*z=malloc(8*s);
  srand(t+1); for(int i=0;i<s*d;i++)X[i]=rand()/(double)RAND_MAX-0.5; for(int i=0;i<s;i++)y[i]=rand()/(double)RAND_MAX; for(int i=0;i<d;i++)w[i]=rand()/(double)RAND_MAX-0.5;
  for(int problem=0;problem<2;problem++){
   for(int i=0;i<d;i++){g[i]=0.5;g2[i]=0.5;}
   fastk_partial_gradient(X,y,s,d,problem,w,r,g);
   for(int j=0;j<s;j++){double zz=0; for(int c=0;c<d;c++) zz+=X[j*d+c]*w[c]; zz = problem? 1/(1+exp(-zz))-y[j] : zz-y[j]; for(int c=0;c<d;c++) g2[c]+=zz*X[j*d+c];}
   for(int c=0;c<d;c++){double e=fabs(g[c]-g2[c])/(fabs(g2[c])+1e-12); if(e>maxrel)maxrel=e;}
  }
  int64_t idx[3]={0,s-1,s/2}; double out[128], ref[128]; int k = s>=3?3:1;
  fastk_mean_rows(X, idx, k, d, out);
  for(int c=0;c<d;c++){ref[c]=0; for(int q=0;q<k;q++) ref[c]+=X[idx[q]*d+c]; ref[c]/=k; double e=fabs(out[c]-ref[c])/(fabs(ref[c])+1e-12); if(e>maxrel)maxrel=e;}
 }
 printf("max rel err %.3g\n", maxrel); return maxrel>1e-12; }
